# Source this to make PyTorch take a second CPU kernel path on this machine, so that results
# which depend on how the CPU rounds are caught here, not on a reader's laptop (issue 19).
# ATen's vectorised kernels (softmax, GELU, LayerNorm, SDPA) drop one instruction-set level, and
# oneDNN / MKL (linear layers, convolutions) are capped at AVX, which has no fused multiply-add:
# every float in a forward pass is rounded differently from the native path.
native=$(.venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())")
case "$native" in
  AVX512*) export ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 ;;
  AVX2)    export ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX MKL_ENABLE_INSTRUCTIONS=AVX ;;
  *)       export ATEN_CPU_CAPABILITY=default ;;
esac
# torch.compile's on-disk graph cache may hold code generated for the native path: do not reuse it.
export TORCHINDUCTOR_FX_GRAPH_CACHE=0
export VITCORE_KERNEL_PATH="native $native, now $(.venv/bin/python -c "import torch; print(torch.backends.cpu.get_cpu_capability())")"
echo "[kernel path] $VITCORE_KERNEL_PATH (ATEN_CPU_CAPABILITY=$ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA=${ONEDNN_MAX_CPU_ISA:-} MKL_ENABLE_INSTRUCTIONS=${MKL_ENABLE_INSTRUCTIONS:-})"
