"""txt2img as a graph through the real executor: validation, progress events, caching."""

from __future__ import annotations

import nodegraph.nodes.latent  # noqa: F401  (registers the SD packs)
import nodegraph.nodes.models  # noqa: F401
import nodegraph.nodes.sampling  # noqa: F401
import nodegraph.nodes.text  # noqa: F401
from nodegraph.events import NodeProgress
from nodegraph.graph import graph_from_data
from nodegraph.registry import load_builtin_nodes


def txt2img_graph(steps: int = 4) -> dict:
    return {
        "format": "nodegraph/1",
        "meta": {"title": "txt2img on the tiny SD fixture (SD 1.5: ckpt_name v1-5-pruned-emaonly.safetensors, config sd15)"},
        "nodes": {
            "ckpt": {"type": "CheckpointLoader", "inputs": {"ckpt_name": "tiny-sd"}},
            "pos": {"type": "CLIPTextEncode", "inputs": {"clip": {"from": ["ckpt", "clip"]}, "text": "a lighthouse at dusk"}},
            "neg": {"type": "CLIPTextEncode", "inputs": {"clip": {"from": ["ckpt", "clip"]}, "text": ""}},
            "empty": {"type": "EmptyLatentImage", "inputs": {"width": 32, "height": 32, "vae": {"from": ["ckpt", "vae"]}}},
            "sample": {"type": "KSampler", "inputs": {
                "model": {"from": ["ckpt", "model"]}, "positive": {"from": ["pos", "conditioning"]},
                "negative": {"from": ["neg", "conditioning"]}, "latent_image": {"from": ["empty", "latent"]},
                "seed": 7, "steps": steps, "cfg": 8.0, "sampler_name": "euler_ancestral", "scheduler": "normal",
            }},
            "decode": {"type": "VAEDecode", "inputs": {"vae": {"from": ["ckpt", "vae"]}, "samples": {"from": ["sample", "latent"]}}},
        },
    }


def test_txt2img_graph_runs_with_progress_and_cache(sd_roots, ctx):
    import torch

    from nodegraph.executor import Executor
    from nodegraph.nodes.latent import empty_latent_image, vae_decode
    from nodegraph.nodes.models import checkpoint_loader
    from nodegraph.nodes.sampling import ksampler
    from nodegraph.nodes.text import clip_text_encode

    registry = load_builtin_nodes()
    executor = Executor(registry, sd_roots, disk_cache=False)
    events = []
    graph = graph_from_data(txt2img_graph())
    result = executor.run(graph, until="decode", observers=[events.append])
    image = result.outputs["decode"]["image"]
    assert image.shape == (1, 3, 32, 32)
    progress = [e for e in events if isinstance(e, NodeProgress)]
    assert [(e.step, e.total) for e in progress] == [(i, 4) for i in range(1, 5)]
    assert all(e.preview.shape == (1, 3, 16, 16) for e in progress)

    # the graph computes exactly what the nodes compute when called directly
    model, clip, vae = checkpoint_loader("tiny-sd", ctx)
    direct = vae_decode(vae, ksampler(model, clip_text_encode(clip, "a lighthouse at dusk"), clip_text_encode(clip, ""),
                                      empty_latent_image(32, 32, vae=vae), ctx, seed=7, steps=4,
                                      sampler_name="euler_ancestral"))
    assert torch.equal(image, direct)

    again = executor.run(graph, until="decode")
    assert again.executed == [] and torch.equal(again.outputs["decode"]["image"], image)


def test_graph_rejects_unknown_sampler_name_before_running(sd_roots):
    import pytest

    from nodegraph.errors import GraphError
    from nodegraph.executor import Executor

    data = txt2img_graph()
    data["nodes"]["sample"]["inputs"]["sampler_name"] = "euler_a"
    with pytest.raises(GraphError) as err:
        Executor(load_builtin_nodes(), sd_roots, disk_cache=False).run(graph_from_data(data), until="decode")
    text = str(err.value)
    assert "euler_a" in text and "euler_ancestral" in text and "dpmpp_2m" in text
