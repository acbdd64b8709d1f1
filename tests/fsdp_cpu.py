"""FSDP2 through accelerate on CPU ranks, for the tests (imported by test_fsdp.py and the rank scripts).

``accelerate launch --config_file configs/accelerate-fsdp.yaml`` gives each process the
``ACCELERATE_USE_FSDP`` / ``FSDP_*`` variables that :func:`fsdp_env` computes with accelerate's own
launcher code. accelerate then turns FSDP on only for GPUs (on CPU it quietly runs DDP), so
:func:`on_cpu` switches a freshly made accelerator's state to FSDP with the plugin those variables
describe; ``fully_shard`` and its collectives then really run, on CPU over gloo.
"""

import os

from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin


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
