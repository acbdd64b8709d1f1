"""Several CPU ranks for the tests: launching them, and FSDP2 through accelerate on them.

:func:`two_ranks` runs a script under ``torch.distributed.run`` (2 processes, gloo).
``accelerate launch --config_file configs/accelerate-fsdp.yaml`` gives each process the
``ACCELERATE_USE_FSDP`` / ``FSDP_*`` variables that :func:`fsdp_env` computes with accelerate's own
launcher code. accelerate then turns FSDP on only for GPUs (on CPU it quietly runs DDP), so
:func:`on_cpu` switches a freshly made accelerator's state to FSDP with the plugin those variables
describe; ``fully_shard`` and its collectives then really run, on CPU over gloo.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin


def two_ranks(script: str | Path, *args, env: dict[str, str] | None = None) -> None:
    """Run ``script`` with ``args`` on two CPU ranks; fails the test with the ranks' stderr."""
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={port}", str(script), *map(str, args)],
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]


def run_ranks(config: dict, out: Path, env: dict[str, str], cross_from: Path | None = None) -> dict:
    """``tests/ladd_ranks.py`` (a run on two ranks, stopped halfway and resumed; with ``cross_from``, another
    launch's halfway checkpoint resumed too) on the config ``config``, under ``env``; returns its ``result.pt``."""
    import torch

    out.mkdir(parents=True)
    path = write_config(out / "config.toml", config)
    two_ranks(Path(__file__).parent / "ladd_ranks.py", path, out,
              *([cross_from / "half" / "checkpoint.pt"] if cross_from else []), env=env)
    return torch.load(out / "result.pt", weights_only=False)


def leave() -> None:
    """End a rank script: wait for every rank, close the process group, then ``os._exit(0)``. The interpreter's
    normal teardown of torch's C++ state (gloo and profiler threads) aborted ranks now and then with "terminate
    called without an active exception" after every check had passed and the results were on disk."""
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def write_config(path: Path, values: dict) -> Path:
    """A TOML config file of ``values`` (numbers, strings, booleans and lists/tuples of them; a dict is a section,
    a dict inside it a sub-section such as ``[dmd.ca_noise]``)."""
    line = lambda k, v: f"{k} = {json.dumps(v)}\n"  # noqa: E731

    def table(name: str, d: dict) -> str:
        head = f"[{name}]\n" if name else ""
        own = "".join(line(k, v) for k, v in d.items() if not isinstance(v, dict))
        return head + own + "".join(table(f"{name}.{k}" if name else k, v) for k, v in d.items() if isinstance(v, dict))

    path.write_text(table("", values))
    return path


def fsdp_env(config_file: str, processes: int = 2) -> dict[str, str]:
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", config_file, "--num_processes", str(processes), "x.py"])
    env = prepare_multi_gpu_env(_validate_launch_command(args)[0])
    return {k: v for k, v in env.items() if k.startswith("FSDP_") or k == "ACCELERATE_USE_FSDP"}


def on_cpu(make_accelerator):
    """``make_accelerator`` whose accelerators use FSDP when the environment asks for it.

    accelerate re-copies ``distributed_type`` from its process state (``PartialState``) whenever an
    ``AcceleratorState()`` is created, e.g. by the first prepared optimizer, so only the first
    ``prepare`` call (the student's) is sure to see FSDP; the heads' call then gets DDP. With
    ``ZLAB_TEST_FSDP_EVERYWHERE=1`` the process state says FSDP too, and every call shards (the heads as well):
    the trainer must work either way.
    """

    def make(*args, **kwargs):
        accelerator = make_accelerator(*args, **kwargs)
        if os.environ.get("ACCELERATE_USE_FSDP") == "true":
            accelerator.state.distributed_type = DistributedType.FSDP
            plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables
            if accelerator.mixed_precision != "no":
                plugin.set_mixed_precision(accelerator.mixed_precision)  # as accelerate does on GPUs
            accelerator.state.fsdp_plugin = plugin
            if os.environ.get("ZLAB_TEST_FSDP_EVERYWHERE") == "1":
                PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        return accelerator

    return make
