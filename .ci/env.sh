# Environment shared by the book build and the tests: no network, CPU threads as on CI.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export MPLBACKEND=${MPLBACKEND:-module://matplotlib_inline.backend_inline}
export PYTHONHASHSEED=0
export PYDEVD_DISABLE_FILE_VALIDATION=1
# Python keeps the byte-code it compiles (__pycache__, git-ignored), even where the environment
# says not to (PYTHONDONTWRITEBYTECODE, set on some CI machines): otherwise every process, every
# notebook kernel included, compiles torch and the rest from source again (`import torch` 4 s
# instead of 2 s here).
unset PYTHONDONTWRITEBYTECODE
