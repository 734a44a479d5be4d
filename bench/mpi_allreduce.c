/* The reference for `conveyor bench allreduce` (bench/allreduce_vs_mpi.sh): Open MPI's
 * MPI_Allreduce (in place, float, MPI_SUM) over the same sizes, timed the same way: one
 * checked run, a repeat count from it broadcast by rank 0, the mean of the repeats between
 * two barriers. Rank 0 prints the same JSON fields.
 *   mpirun -np N mpi_allreduce MIN_BYTES MAX_BYTES FACTOR SECONDS_PER_SIZE */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  if (argc != 5) {
    if (rank == 0) fprintf(stderr, "usage: mpi_allreduce MIN_BYTES MAX_BYTES FACTOR SECONDS\n");
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const double min_bytes = atof(argv[1]), max_bytes = atof(argv[2]), factor = atof(argv[3]);
  const double budget = atof(argv[4]);
  float* data = malloc((size_t)max_bytes);
  if (!data) MPI_Abort(MPI_COMM_WORLD, 1);
  for (double bytes = min_bytes; bytes <= max_bytes * 1.0000001; bytes *= factor) {
    const size_t count = (size_t)bytes / sizeof(float);
    for (size_t i = 0; i < count; ++i) data[i] = (float)(rank + 1);
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, data, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    const double first = MPI_Wtime() - t0;
    const float want = (float)n * (float)(n + 1) / 2;
    for (size_t i = 0; i < count; ++i)
      if (data[i] != want) MPI_Abort(MPI_COMM_WORLD, 1);
    int iters = (int)(budget / (first > 1e-6 ? first : 1e-6));
    iters = iters < 1 ? 1 : iters > 1000 ? 1000 : iters;
    MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (size_t i = 0; i < count; ++i) data[i] = 0.0f;
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (int i = 0; i < iters; ++i)
      MPI_Allreduce(MPI_IN_PLACE, data, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    const double seconds = (MPI_Wtime() - t0) / iters;
    if (rank == 0) {
      const double algbw = (double)(count * sizeof(float)) / seconds / 1e9;
      printf("{\"bytes\": %zu, \"ranks\": %d, \"iters\": %d, \"time_us\": %.1f, "
             "\"algbw_GBps\": %.3f, \"busbw_GBps\": %.3f}\n",
             count * sizeof(float), n, iters, seconds * 1e6, algbw, algbw * 2.0 * (n - 1) / n);
      fflush(stdout);
    }
  }
  free(data);
  MPI_Finalize();
  return 0;
}
