#!/usr/bin/env bash
# make gpu-check: every GPU measurement of the spectra engine, in one command that a GPU machine
# lent for minutes can run (docs/benchmarks.md, "On a GPU"). Each report is written as soon as
# it is measured, the issue's GPU target first, so a run stopped at its time limit keeps what it
# finished.
#
#   benchmarks/gpu_check.sh OUT_DIR [PYTHON]
#
# 1. peers-gpu.md/.json: nets against hessian-eigenthings (one block at a time) and the authors'
#    algorithm, blockwise on the GPT-2-small-sized model (bench_peers.py --grid gpu): time, HVPs
#    per second and the GPU allocator's peak, with the issue's targets;
# 2. cuda-tests.txt: the tests that run only on CUDA (every product mode against the dense
#    Hessian on the GPU, plain torch.nn models among them: recurrent layers without cuDNN;
#    the GPU spectrum against the CPU's, the peak-memory counter, training);
# 3. memory-gpu.md/.json: the same cell's memory against speed (bench_memory.py): nets at the
#    least budget and two fixed ones against hessian-eigenthings, the two blockwise targets that
#    pull against each other;
# 4. modes-gpu.md: forward-over-reverse against the double backward by tangent count on the
#    GPU-check model (the measurement behind nets.engine.hvp.FORWARD_MIN_TANGENTS);
# 5. reorth-gpu.md: reorthogonalization's chunk size on the GPU (behind
#    nets.engine.lanczos.REORTH_CHUNK_BYTES_ACCELERATOR);
# 6. gpu-check.json: `nets gpu-check` (the GPT-2-small blockwise spectrum and one gpu ladder
#    point).
#
# Two more steps run only when named in GPU_CHECK_STEPS (below): gpu-full, the full spectrum of
# the same model against hessian-eigenthings and curvlinops (bench_peers.py --grid gpu-full,
# peers-gpu-full.md/.json), gpu-full-compile, the compiled nets row added to it (--compile
# --resume), and gpu-full-partial, the same cell with nets at reorth="partial" against nets'
# default in the same run (--reorth partial, peers-gpu-full-partial.md/.json).
#
# Each step has a time limit (seconds, the second argument of `step`), sized from the steps'
# times on an H200 so that the whole check fits a lent machine's 10-minute command (the
# gpu-full steps' limits are guesses: they have not run on a GPU yet); GPU_CHECK_UNLIMITED=1
# lifts them. Eight files in all (a lent machine returns at most eight).
# GPU_CHECK_STEPS="peers memory" runs only the steps named (in the script's order), so a check
# can be split over several shorter commands: a lent machine that stops answering returns
# nothing of the command it was running.
set -uo pipefail
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [PYTHON]}
py=${2:-python3}
cd "$(dirname "$0")/.." || exit 2
known="peers cuda-tests memory modes reorth gpu-check gpu-full gpu-full-compile gpu-full-partial"
steps=${GPU_CHECK_STEPS:-peers cuda-tests memory modes reorth gpu-check}
for s in $steps; do
    [[ " $known " == *" $s "* ]] || { echo "unknown step '$s' in GPU_CHECK_STEPS; the steps: $known" >&2; exit 2; }
done
mkdir -p "$out"
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME LIMIT COMMAND...: run one measurement, log it, go on after a failure
    local name=$1 limit=$2; shift 2
    [[ " $steps " == *" $name "* ]] || return 0
    [[ ${GPU_CHECK_UNLIMITED:-0} == 1 ]] && limit=0
    echo "== $name (limit ${limit} s): $*"
    local t0=$SECONDS rc=0
    timeout -k 10 "$limit" "$@" || rc=$?
    if ((rc == 124 || rc == 137)); then
        echo "== $name STOPPED at its ${limit} s limit"; status=1
    elif ((rc != 0)); then
        echo "== $name FAILED (exit $rc)"; status=1
    fi
    echo "== $name took $((SECONDS - t0)) s"
}
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; \
print('torch', torch.__version__, torch.cuda.get_device_name())" || exit 2
step peers 120 "$py" benchmarks/bench_peers.py --grid gpu --out "$out/peers-gpu.md" \
    --json "$out/peers-gpu.json"
step cuda-tests 45 bash -c "set -o pipefail; '$py' -m pytest -q -p no:cacheprovider -k cuda \
    tests/nets/test_hvp_modes.py tests/nets/test_accuracy.py tests/nets/test_memory.py \
    tests/nets/test_training_devices.py tests/nets/test_torch_architectures.py 2>&1 \
    | tee '$out/cuda-tests.txt'"
step memory 160 "$py" benchmarks/bench_memory.py --model gpt-gpu --device cuda --blocks gpu-check \
    --threads 4 --budgets least,2048,4096 --json "$out/memory-gpu.json" --out "$out/memory-gpu.md"
step modes 100 "$py" benchmarks/bench_modes.py --device cuda --models gpt-gpu \
    --tangents 1 4 8 16 32 --threads 4 --out "$out/modes-gpu.md"
step reorth 45 "$py" benchmarks/bench_reorth.py --device cuda --dim $((1 << 24)) \
    --chunks 4 16 64 256 1024 --threads 4 --out "$out/reorth-gpu.md"
step gpu-check 70 bash -c "'$py' -m nets gpu-check --json > '$out/gpu-check.json'"
step gpu-full 240 "$py" benchmarks/bench_peers.py --grid gpu-full --out "$out/peers-gpu-full.md" \
    --json "$out/peers-gpu-full.json"
step gpu-full-compile 240 "$py" benchmarks/bench_peers.py --grid gpu-full --compile --resume \
    --out "$out/peers-gpu-full.md" --json "$out/peers-gpu-full.json"
step gpu-full-partial 240 "$py" benchmarks/bench_peers.py --grid gpu-full --reorth partial \
    --out "$out/peers-gpu-full-partial.md" --json "$out/peers-gpu-full-partial.json"
exit $status
