"""Run the break-fix Jobs' containers as rendered (their `command` and `env`, not retyped) on this machine, against
stand-in `nvidia-smi`, `dcgmi` and `all_reduce_perf` executables that print what the real tools print, and a
stand-in `torch` (numpy) for the serving smoke test's import. Their output is what the gate reads from the pod's
log, so a broken check script fails the gate here as it would on a node.

The output formats (what the scripts parse):
- `nvidia-smi` (no arguments, the validation suite's node checks): the table whose banner line holds
  `NVIDIA-SMI <version>  Driver Version: <version>` and whose first row per GPU starts `|   <i>  NVIDIA <name>`
  (the shapes the suite's parsers name: ISV-NCP-Validation-Suite v0.6.8 isvtest/src/isvtest/core/nvidia.py
  parse_driver_version "Driver Version: 580.95.05", count_gpus_from_full_output "| 0  NVIDIA A100-SXM4-80GB");
  `nvidia-smi --query-gpu=<field> --format=csv,noheader`: one value per GPU per line; `nvidia-smi -L`: `GPU <i>:
  <name> (UUID: GPU-<uuid>)` per GPU; `nvidia-smi -r`: `GPU <bus id> was successfully reset.` then `All done.`
  (nvidia-smi(1), "-L, --list-gpus", "--query-gpu", "-r, --gpu-reset"; `nvidia-smi --help-query-gpu` for the
  driver_version and mig.mode.current fields).
- `dcgmi diag -r 2`: `Successfully ran diagnostic for group.` and a table of `| <test> | Pass |` rows per
  category (Deployment, Integration, Hardware, Stress), `Fail` on a failed test; exit 0 when every test passed
  (docs.nvidia.com/datacenter/dcgm/latest/reference/command-line-reference/dcgmi/dcgmi-diag.html, output and exit
  status).
- `all_reduce_perf`: nccl-tests' header, one row per size and the footer `# Avg bus bandwidth    : <g>`
  (NVIDIA/nccl-tests src/util.cu writeResultFooter@0fdb00a3, as data/compatibility-matrix.yaml ncclTests cites).
"""
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ncp.plan.break_fix import HOST_MOUNT, SCRATCH_ENV

NVIDIA_SMI = r"""#!/bin/sh
# stand-in nvidia-smi: the node's GPUs as STANDIN_* describe them
case "$*" in
  "") echo "+-----------------------------------------------------------------------------------------+"
      printf '| NVIDIA-SMI %-22s Driver Version: %-14s CUDA Version: 13.1     |\n' "$STANDIN_DRIVER" "$STANDIN_DRIVER"
      echo "|-----------------------------------------+------------------------+----------------------+"
      echo "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |"
      echo "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |"
      echo "|                                         |                        |               MIG M. |"
      echo "|=========================================+========================+======================|"
      i=0; while [ $i -lt "$STANDIN_GPUS" ]; do
        printf '| %3d  %-27s On  |   00000000:%02X:00.0 Off |                    0 |\n' $i "$STANDIN_NAME" $((24 + i))
        echo "| N/A   31C    P0             76W /  700W |       0MiB / 143771MiB |      0%      Default |"
        printf '|                                         |                        | %20s |\n' "$STANDIN_MIG"
        echo "+-----------------------------------------+------------------------+----------------------+"
        i=$((i+1)); done ;;
  *--query-gpu=driver_version*) i=0; while [ $i -lt "$STANDIN_GPUS" ]; do echo "$STANDIN_DRIVER"; i=$((i+1)); done ;;
  *--query-gpu=mig.mode.current*) i=0; while [ $i -lt "$STANDIN_GPUS" ]; do echo "$STANDIN_MIG"; i=$((i+1)); done ;;
  -L) i=0; while [ $i -lt "$STANDIN_GPUS" ]; do
        echo "GPU $i: $STANDIN_NAME (UUID: GPU-00000000-0000-0000-0000-00000000000$i)"; i=$((i+1)); done ;;
  -r) i=0; while [ $i -lt "$STANDIN_GPUS" ]; do
        printf 'GPU 00000000:%02X:00.0 was successfully reset.\n' $((24 + i)); i=$((i+1)); done; echo "All done." ;;
  *) echo "stand-in nvidia-smi: unsupported arguments: $*" >&2; exit 2 ;;
esac
"""

DCGMI = r"""#!/bin/sh
# stand-in dcgmi: `dcgmi diag` against the host engine, every test passing unless STANDIN_DIAG_FAIL names one
[ "$1" = diag ] || { echo "stand-in dcgmi: unsupported arguments: $*" >&2; exit 2; }
row() { if [ "$STANDIN_DIAG_FAIL" = "$1" ]; then r="Fail - GPU: 0"; else r="Pass - All"; fi
        printf '| %-25s | %-46s |\n' "$1" "$r"; }
echo "Successfully ran diagnostic for group."
echo "+---------------------------+------------------------------------------------+"
echo "| Diagnostic                | Result                                         |"
echo "+===========================+================================================+"
echo "|-----  Deployment  --------+------------------------------------------------|"
for t in Denylist "NVML Library" "CUDA Main Library" "Permissions and OS Blocks" "Persistence Mode" Environment \
         "Page Retirement/Row Remap" "Graphics Processes" "Inforom"; do row "$t"; done
echo "+-----  Integration  -------+------------------------------------------------+"
row "PCIe"
echo "+-----  Hardware  ----------+------------------------------------------------+"
row "GPU Memory"
echo "+-----  Stress  ------------+------------------------------------------------+"
row "Memory Bandwidth"
echo "+---------------------------+------------------------------------------------+"
[ -z "$STANDIN_DIAG_FAIL" ]
"""

ALL_REDUCE_PERF = r"""#!/bin/sh
# stand-in all_reduce_perf: nccl-tests' output for one node's GPUs at STANDIN_BUSBW GB/s
echo "# nThread 1 nGpus $STANDIN_GPUS minBytes 1073741824 maxBytes 8589934592 step: 2(factor) warmup iters: 5" \
     "iters: 20 agg iters: 1 validation: 1 graph: 0"
echo "#"
echo "#                                          out-of-place                    in-place"
echo "#      size       count   type  redop  root    time  algbw  busbw #wrong    time  algbw  busbw #wrong"
echo "#       (B)  (elements)                        (us) (GB/s) (GB/s)           (us) (GB/s) (GB/s)"
for size in 1073741824 2147483648 4294967296 8589934592; do
  echo "  $size  $((size / 4))  float    sum    -1  5872.1 182.85 $STANDIN_BUSBW      0  5866.4 183.03" \
       "$STANDIN_BUSBW      0"
done
echo "# Out of bounds values : 0 OK"
echo "# Avg bus bandwidth    : $STANDIN_BUSBW "
echo "#"
"""

# The sanitize step must never reach a real device from here: these refuse, and job_logs refuses a host mount.
REFUSE = "#!/bin/sh\necho \"stand-in $(basename \"$0\"): refused on a test machine\" >&2\nexit 1\n"

# The CUDA tensor API the smoke test calls, on the CPU.
TORCH = "import numpy\n\n\ndef ones(*shape, device=None):\n    return numpy.ones(shape, dtype=numpy.float32)\n"


@dataclass(frozen=True)
class Node:
    """What a node's GPUs and rails report to the tools."""

    driver: str
    gpus: int
    name: str = "NVIDIA H200"
    mig: str = "Disabled"
    busbw: float = 0.0
    diag_fail: str = ""  # a DCGM test that fails ("" none)


def standins(directory: Path) -> Path:
    """The stand-in executables and the torch module under `directory`; returns it."""
    bin_dir, site = directory / "bin", directory / "site"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (site / "torch").mkdir(parents=True, exist_ok=True)
    for name, text in (("nvidia-smi", NVIDIA_SMI), ("dcgmi", DCGMI), ("all_reduce_perf", ALL_REDUCE_PERF),
                       ("nvme", REFUSE), ("blkdiscard", REFUSE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    # This interpreter (it has numpy, for the torch stand-in): a wrapper, as a symlink would leave its virtualenv.
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    (site / "torch" / "__init__.py").write_text(TORCH)
    return directory


def run_container(container: dict, node: Node, directory: Path) -> str:
    """The container's command with its own env, the scratch emptyDir a private directory, the stand-ins first on
    PATH; returns what it printed (stdout and stderr, as the pod's log holds both)."""
    scratch = directory / "scratch" / container["name"]
    scratch.mkdir(parents=True, exist_ok=True)
    env = {item["name"]: item["value"] for item in container.get("env") or []}
    env.update({"HOME": str(scratch), SCRATCH_ENV: str(scratch),
                "PATH": f"{directory / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                "PYTHONPATH": str(directory / "site"), "STANDIN_DRIVER": node.driver, "STANDIN_GPUS": str(node.gpus),
                "STANDIN_NAME": node.name, "STANDIN_MIG": node.mig, "STANDIN_BUSBW": f"{node.busbw:.2f}",
                "STANDIN_DIAG_FAIL": node.diag_fail})
    done = subprocess.run(container["command"], env=env, capture_output=True, text=True, timeout=120, check=False)
    return done.stdout + done.stderr


def job_logs(job: dict, node: Node, directory: Path) -> dict[str, str]:
    """Container name -> its output, for every container of the Job's pod in order."""
    spec = job["spec"]["template"]["spec"]
    if Path(HOST_MOUNT).exists():
        raise RuntimeError(f"{HOST_MOUNT} exists on this machine: the sanitize step would see its devices")
    standins(directory)
    return {c["name"]: run_container(c, node, directory) for c in [*(spec.get("initContainers") or []),
                                                                    *spec["containers"]]}
