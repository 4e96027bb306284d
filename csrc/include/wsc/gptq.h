// One block of GPTQ columns: error-compensated assignment of weights to sorted shared values
// (the inner loop of wsc.compensate.assign; its numpy twin wsc.reference.gptq_block gives the
// same results bit for bit).
#pragma once
#include <cstdint>

namespace wsc {

// For each of groups * rows independent lines (a row of one group's weight block, float64,
// `width` columns, updated in place), columns i = 0 .. width - 1 in order:
//   q = the chosen value for x = block[i]: the nearest of values[0..k) (ties: the lower) when
//       rate == 0 or k == 1, else whichever of the two values around x costs less in
//       ((x - v) / spacing)^2 + rate * bits[v] (ties: the lower), spacing = (v[k-1] - v[0]) / (k - 1);
//   err[i] = (x - values[q]) / pivots[g][i];  block[c] -= err[i] * u[g][i][c] for c > i.
// u: [groups, width, width] (the block's rows and columns of the upper Cholesky factor of H's
// inverse), pivots: [groups, width], q and err: [groups, rows, width]. bits is read only when
// rate != 0 and k > 1. Values must be sorted ascending; inputs are expected finite (a NaN x
// takes the last pair, as torch.searchsorted puts NaN last). Results do not depend on the
// thread count (each line is solved by one thread, in column order).
void gptq_block(double* block, int64_t groups, int64_t rows, int64_t width, const double* u,
                const double* pivots, const double* values, int64_t k, const double* bits,
                double rate, int64_t* q, double* err);

}  // namespace wsc
