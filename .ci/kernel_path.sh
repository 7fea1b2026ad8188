# Source this to make PyTorch take a second CPU kernel path on this machine, so that results
# which depend on how the CPU rounds are caught here, not on a reader's laptop (issue 19).
# What it can change depends on the CPU (torch.backends.cpu.get_cpu_capability()), and it says
# what it changed:
#   AVX512 (x86)  ATen's vectorised kernels (softmax, GELU, LayerNorm, SDPA) at AVX2; oneDNN and
#                 MKL (linear layers, convolutions) capped at AVX2
#   AVX2 (x86)    ATen at its default level (no AVX2); oneDNN and MKL capped at AVX, which has no
#                 fused multiply-add: every float in a forward pass is rounded differently
#   SVE256 (ARM)  ATen at its default level (NEON)
#   anything else (ARM without SVE, x86 without AVX2, POWER, s390x): there is no lower level to
#                 drop to; the second path is the native one, and this script says so plainly.
describe() {  # a capability in words: DEFAULT is "no AVX2" on x86 and NEON on ARM
  case "$1" in
    DEFAULT | "NO AVX")
      case "$(uname -m)" in
        x86_64 | amd64 | i?86) echo "default (no AVX2)" ;;
        aarch64 | arm64) echo "default (NEON)" ;;
        *) echo "default" ;;
      esac ;;
    *) echo "$1" ;;
  esac
}
capability() { .venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())"; }
# the native level: measured without a cap an earlier source of this script (or the caller) set
native=$(env -u ATEN_CPU_CAPABILITY -u ONEDNN_MAX_CPU_ISA -u MKL_ENABLE_INSTRUCTIONS \
           .venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())")
unset ONEDNN_MAX_CPU_ISA MKL_ENABLE_INSTRUCTIONS
case "$native" in
  AVX512*) export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
           libs="oneDNN and MKL at most AVX2 (no AVX-512)" ;;
  AVX2)    export ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX MKL_ENABLE_INSTRUCTIONS=AVX
           libs="oneDNN and MKL at most AVX (no FMA)" ;;
  *)       export ATEN_CPU_CAPABILITY=default
           libs="" ;;
esac
# torch.compile's on-disk graph cache may hold code generated for the native path: do not reuse it.
export TORCHINDUCTOR_FX_GRAPH_CACHE=0
now=$(capability)
export VITCORE_KERNEL_PATH="native $native, now $now"
if [ "$now" = "$native" ] && [ -z "$libs" ]; then
  echo "[kernel path] native kernels $(describe "$native"); second path: the same. This CPU has no" \
       "lower instruction-set level to drop to, so nothing changed: the numerics tests and the book" \
       "run on this CPU's own rounding only"
else
  echo "[kernel path] native kernels $(describe "$native"); second path: ATen $(describe "$now")${libs:+, $libs}" \
       "(ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-} MKL_ENABLE_INSTRUCTIONS=${MKL_ENABLE_INSTRUCTIONS:-})"
fi
unset native now libs
unset -f describe capability
