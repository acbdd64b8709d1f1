"""A GPU-profile Shapes teacher at CPU-test dims, for tests that run the GPU profile's code path on CPU."""

import json
from pathlib import Path

from zlab.tiny import build_tiny_pipeline
from zlab.train.teacher import TeacherConfig, build_teacher_pipeline


def gpu_profile_teacher(out: Path, n_layers: int = 8, image_size: int = 128) -> Path:
    """A random tiny teacher shaped like the GPU profile's (128 px, 8 blocks) at CPU-test dims."""
    config = TeacherConfig(size="tiny", n_layers=n_layers, image_size=image_size)
    pipe = build_teacher_pipeline(config, build_tiny_pipeline("tiny", seed=0).vae)
    pipe.save_pretrained(out)
    sampling = {"num_inference_steps": 4, "guidance_scale": 2.0, "cfg_truncation": 1.0, "height": image_size,
                "width": image_size, "max_sequence_length": 16}
    (out / "sampling.json").write_text(json.dumps(sampling))
    return out
