// CPU reference kernels: forward and backward of every op GPT-2 needs, one function per op
// of kernels/ops.def with the signature, layouts and contract given there (backward
// functions ACCUMULATE into their gradient outputs, llm.c style); CpuBackend calls these.
//
// Determinism: every function gives the same bits for the same inputs, whatever the
// number of threads OpenBLAS or the caller uses. No function keeps state between calls.
// Thread safety: functions may run concurrently on disjoint outputs.
//
// Threads: the kernels parallelise themselves (a process-wide pool, see set_num_threads)
// over tasks cut by shape alone, and call OpenBLAS single-threaded from those tasks; they
// set OpenBLAS's own thread count to 1, because OpenBLAS's internal threading changes
// results with the thread count.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/adamw.h"

namespace conveyor::cpu {

// ---- The ops: one function per entry of kernels/ops.def, with the signature and the contract
// it gives there -----------------------------------------------------------------------------
using AdamWParams = kernels::AdamWParams;  // one definition, in kernels/adamw.h
#define CONVEYOR_KERNEL_OP(ret, name, params, args) ret name params;
#include "kernels/ops.def"

// ---- Threads ----------------------------------------------------------------------------
// Threads the kernels use (the caller included). Default: $CONVEYOR_CPU_THREADS, else the
// number of hardware threads. Results do not depend on it. Blocks while a kernel of
// another thread is running in parallel.
void set_num_threads(int n);
int num_threads();

}  // namespace conveyor::cpu
