"""CLIP-space nodes on a tiny random open_clip model built offline (a config registered with
open_clip.add_model_config, saved in the loader's folder layout) and the tiny Stable
Diffusion parts of tests/diffusion. Real models and files throughout, no mocks.

A random CLIP cannot know that a caption matches its picture, so these tests check the
mechanics (unit vectors, symmetry, probabilities, ranking, caching, the direction of the
guidance); accuracy on world data belongs to the world-trained CLIP."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nodegraph.context import CancelToken, Roots, RunContext
from nodegraph.errors import NodeInputError
from nodegraph.nodes import clip_space as C
from nodegraph.nodes import guidance as G
from nodegraph.nodes import latent as L
from nodegraph.nodes import models as M
from nodegraph.nodes import sampling as S
from nodegraph.nodes import text as T
from nodegraph.nodes import world as W
from nodegraph.nodes.image import image_to_pil



def _diffusion_builders():
    """tests/diffusion/conftest.py's tiny-SD builders, imported by path under their own name
    (a plain `import conftest` would get whichever conftest pytest registered first)."""
    import importlib.util

    name = "nodegraph_tests_diffusion_builders"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "diffusion" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


save_diffusers_folder = _diffusion_builders().save_diffusers_folder

TINY_NAME = "nodegraph-test-tiny-clip"
TINY_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    """The tiny open_clip model, built the documented offline way: a JSON config registered
    with add_model_config, then create_model_and_transforms(name, pretrained=None)."""
    import open_clip

    config_dir = tmp_path_factory.mktemp("open_clip_configs")
    (config_dir / f"{TINY_NAME}.json").write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config_dir)
    torch.manual_seed(1234)
    model, _, _ = open_clip.create_model_and_transforms(TINY_NAME, pretrained=None)
    model.eval()
    return model


@pytest.fixture(scope="module")
def model_root(tmp_path_factory, tiny_open_clip):
    """Model root: tiny-clip/ (loader folder layout), a bare weights file, tiny-sd/."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("clip_models")
    C.save_open_clip_folder(tiny_open_clip, TINY_CONFIG, root / "tiny-clip")
    state = {k: v.detach().clone().contiguous() for k, v in tiny_open_clip.state_dict().items()}
    save_file(state, str(root / "tiny-weights.safetensors"))
    torch.save(state, str(root / "tiny-weights.pt"))
    save_diffusers_folder(root / "tiny-sd")
    return root


@pytest.fixture
def ctx(tmp_path, model_root) -> RunContext:
    roots = Roots(inputs=[tmp_path / "input"], outputs=tmp_path / "output", models=[model_root], cache=tmp_path / "cache")
    for folder in (*roots.inputs, roots.outputs, roots.cache):
        folder.mkdir(parents=True, exist_ok=True)
    return RunContext("t", "T", roots, CancelToken())


@pytest.fixture
def clip(ctx):
    return C.open_clip_loader(ctx=ctx, model_name="tiny-clip", pretrained="none")


def world_images(n: int, size: int = 48) -> tuple[torch.Tensor, list[str]]:
    outs = [W.world_scene(seed=100 + i, n_objects=1, size=size) for i in range(n)]
    return torch.cat([o.image for o in outs]), [o.caption for o in outs]


def _reference_embeds(model, clip_handle, images):
    """Independent path: open_clip's own encode_image on the prepared pixels."""
    with torch.no_grad():
        return torch.nn.functional.normalize(model.encode_image(clip_handle.prepare(images)), dim=-1)


# ---- loading -------------------------------------------------------------------------------


def test_loader_reads_the_folder_shares_it_and_open_clip_reads_it_too(ctx, model_root, tiny_open_clip):
    import open_clip

    before = M.MANAGER.loads
    handle = C.open_clip_loader(ctx=ctx, model_name="tiny-clip", pretrained="none")
    again = C.open_clip_loader(ctx=ctx, model_name="tiny-clip", pretrained="ignored-for-folders")
    assert again is handle and M.MANAGER.loads <= before + 1  # loaded once, shared
    assert handle.image_size == (32, 32) and len(handle.fingerprint) == 24
    assert json.loads((model_root / "tiny-clip" / C.CONFIG_FILE).read_text())["model_cfg"] == TINY_CONFIG

    images, _ = world_images(3)
    ours = handle.encode_images(images)
    assert torch.allclose(ours, _reference_embeds(tiny_open_clip, handle, images), atol=1e-5)
    # the very same folder through open_clip's own local-dir loader
    theirs = open_clip.create_model(f"local-dir:{model_root / 'tiny-clip'}").eval()
    assert torch.allclose(ours, _reference_embeds(theirs, handle, images), atol=1e-5)
    tokens = open_clip.get_tokenizer(TINY_NAME)(["a red circle"])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(tiny_open_clip.encode_text(tokens), dim=-1)
    assert torch.allclose(handle.encode_texts(["a red circle"]).cpu(), expected, atol=1e-5)


def test_loader_by_name_with_a_weights_file_and_pickle_policy(ctx, clip):
    images, _ = world_images(2)
    by_file = C.open_clip_loader(ctx=ctx, model_name=TINY_NAME, pretrained="tiny-weights.safetensors")
    assert torch.allclose(by_file.encode_images(images), clip.encode_images(images), atol=1e-6)
    random = C.open_clip_loader(ctx=ctx, model_name=TINY_NAME, pretrained="none")
    assert not torch.allclose(random.encode_images(images), clip.encode_images(images), atol=1e-3)
    M.MANAGER.free(random.key)  # 'none' is seeded: a fresh load (another process) is the same model
    reloaded = C.open_clip_loader(ctx=ctx, model_name=TINY_NAME, pretrained="none")
    assert reloaded is not random and reloaded.fingerprint == random.fingerprint
    assert torch.equal(reloaded.encode_images(images), random.encode_images(images))
    with pytest.raises(NodeInputError, match="pickle") as err:
        C.open_clip_loader(ctx=ctx, model_name=TINY_NAME, pretrained="tiny-weights.pt")
    assert "allow_pickle" in str(err.value)
    trusted = C.open_clip_loader(ctx=ctx, model_name=TINY_NAME, pretrained="tiny-weights.pt", allow_pickle=True)
    assert torch.allclose(trusted.encode_images(images), clip.encode_images(images), atol=1e-6)


def test_unknown_model_name_lists_close_names(ctx):
    with pytest.raises(NodeInputError) as err:
        C.open_clip_loader(ctx=ctx, model_name="ViT-B-23", pretrained="none")
    message = str(err.value)
    assert err.value.input == "model_name" and "close names" in message and "ViT-B-32" in message
    with pytest.raises(NodeInputError, match="close names: ViT-B-16"):
        C.open_clip_loader(ctx=ctx, model_name="vit_b_16", pretrained="none")
    with pytest.raises(NodeInputError, match="close names: ViT-L-14"):
        C.open_clip_loader(ctx=ctx, model_name="vit-l-14", pretrained="none")


def test_a_misspelt_folder_name_suggests_the_folder(ctx, model_root, tiny_open_clip):
    """Folders under the model roots count as known names too (the shipped world CLIP is one)."""
    with pytest.raises(NodeInputError, match="close names: tiny-clip"):
        C.open_clip_loader(ctx=ctx, model_name="tiny-clp")


def test_unknown_tag_lists_tags_and_offline_tag_is_a_clear_error(ctx, monkeypatch):
    with pytest.raises(NodeInputError) as err:
        C.open_clip_loader(ctx=ctx, model_name="ViT-B-32", pretrained="laion9000")
    assert err.value.input == "pretrained" and "laion2b_s34b_b79k" in (err.value.expected or "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NodeInputError, match="HF_HUB_OFFLINE"):
        C.open_clip_loader(ctx=ctx, model_name="ViT-B-32", pretrained="laion2b_s34b_b79k")


def test_folder_without_config_is_a_clear_error(ctx, model_root):
    with pytest.raises(NodeInputError, match="open_clip config"):
        C.open_clip_loader(ctx=ctx, model_name="tiny-sd", pretrained="none")


# ---- embeddings, similarity, zero-shot ------------------------------------------------------------


def test_embeddings_are_unit_length(clip):
    images, captions = world_images(4)
    img = C.embed_images(clip=clip, images=images)
    txt = C.embed_texts(clip=clip, texts=captions)
    assert img.vectors.shape == (4, 16) and txt.vectors.shape == (4, 16)
    assert torch.allclose(img.vectors.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert torch.allclose(txt.vectors.norm(dim=-1), torch.ones(4), atol=1e-5)
    assert txt.labels == captions and img.labels == [f"image {i}" for i in range(4)]
    with pytest.raises(NodeInputError, match="at least one text"):
        C.embed_texts(clip=clip, texts=[])


def test_similarity_matrix_symmetric_table_and_heatmap(ctx, clip):
    from PIL import Image as PILImage

    images, captions = world_images(3)
    img = C.embed_images(clip=clip, images=images)
    txt = C.embed_texts(clip=clip, texts=captions + ["a green star"])
    both = C.Embeddings(torch.cat([img.vectors, txt.vectors]), img.labels + txt.labels, "mixed")
    out = C.similarity_matrix(a=both, ctx=ctx, filename="clip/self")
    values = np.array(out.table["values"])
    assert values.shape == (7, 7)
    assert np.allclose(values, values.T, atol=1e-6) and np.allclose(np.diag(values), 1.0, atol=1e-5)
    assert out.table["rows"] == both.labels == out.table["columns"]
    json_path, png_path = (Path(p) for p in out.files)
    assert json.loads(json_path.read_text()) == out.table
    with PILImage.open(png_path) as pil:
        assert pil.format == "PNG" and pil.size[0] > 100
    assert out.heatmap.shape[:2] == (1, 3) and png_path in ctx.files
    cross = C.similarity_matrix(a=img, b=txt, ctx=ctx, filename="clip/cross.png")
    expected = img.vectors @ txt.vectors.T
    assert np.allclose(np.array(cross.table["values"]), expected.numpy(), atol=1e-5)
    assert not list(Path(ctx.roots.outputs, "clip").glob(".*part"))  # atomic writes leave nothing behind


def test_zero_shot_probabilities_sum_to_one(clip):
    images, _ = world_images(3)
    labels = ["circle", "square", "triangle", "star"]
    out = C.zero_shot_classify(clip=clip, images=images, labels=labels)
    assert len(out.probabilities) == 3
    for row, best in zip(out.probabilities, out.best):
        assert list(row) == labels and abs(sum(row.values()) - 1.0) < 1e-5
        assert all(0.0 <= p <= 1.0 for p in row.values()) and best == max(row, key=row.get)


def test_zero_shot_bad_labels_are_clear_errors(clip):
    images, _ = world_images(1)
    with pytest.raises(NodeInputError, match="empty") as err:
        C.zero_shot_classify(clip=clip, images=images, labels=[])
    assert err.value.input == "labels"
    with pytest.raises(NodeInputError, match="repeat"):
        C.zero_shot_classify(clip=clip, images=images, labels=["circle", "circle"])
    with pytest.raises(NodeInputError, match=r"\{\}"):
        C.zero_shot_classify(clip=clip, images=images, labels=["circle"], template="a photo")


# ---- semantic search ---------------------------------------------------------------------------------


def _write_folder(ctx, n: int = 5) -> tuple[Path, list[str]]:
    folder = ctx.roots.inputs[0] / "pics"
    folder.mkdir()
    images, captions = world_images(n, size=40)
    names = []
    for i in range(n):
        name = f"scene_{i}.png"
        image_to_pil(images, i).save(folder / name)
        names.append(name)
    (folder / "notes.txt").write_text("not a picture")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    return folder, names


def test_search_ranks_reports_and_serves_the_second_search_from_disk(ctx, clip):
    folder, names = _write_folder(ctx)
    first = C.semantic_search(clip=clip, ctx=ctx, folder="pics", query="a red circle", k=3, thumb=32)
    scores = [r["score"] for r in first.results]
    assert len(first.results) == 3 and scores == sorted(scores, reverse=True)
    assert all(r["file"] in names for r in first.results) and [r["rank"] for r in first.results] == [1, 2, 3]
    assert {s["file"]: s["reason"] for s in first.skipped}["notes.txt"] == "not an image"
    assert {s["file"] for s in first.skipped} == {"notes.txt", "broken.png"}
    assert first.stats == {"query": "a red circle", "images": 5, "embedded": 5, "from_cache": 0, "skipped": 2}
    assert first.grid.shape == (1, 3, 32, 96)

    # same folder again (a new process would see the same: the vectors are on disk)
    C.MANAGER.free()  # nothing in memory either
    clip2 = C.open_clip_loader(ctx=ctx, model_name="tiny-clip", pretrained="none")
    second = C.semantic_search(clip=clip2, ctx=ctx, folder="pics", query="a red circle", k=3, thumb=32)
    assert second.stats["embedded"] == 0 and second.stats["from_cache"] == 5
    assert [r["file"] for r in second.results] == [r["file"] for r in first.results]
    assert np.allclose([r["score"] for r in second.results], scores, atol=1e-6)

    # a changed picture is embedded again, the others still come from the cache
    changed = folder / names[0]
    image_to_pil(world_images(1, size=40)[0] * 0.5).save(changed)
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    third = C.semantic_search(clip=clip2, ctx=ctx, folder="pics", query="a red circle", k=3, thumb=32)
    assert third.stats["embedded"] == 1 and third.stats["from_cache"] == 4


def test_search_with_a_pictures_own_embedding_finds_that_picture(ctx, clip):
    from PIL import Image as PILImage

    from nodegraph.nodes.image import pil_to_image

    folder, names = _write_folder(ctx)
    for name in names:
        with PILImage.open(folder / name) as pil:
            query = C.embed_images(clip=clip, images=pil_to_image(pil), labels=[name])
        out = C.semantic_search(clip=clip, ctx=ctx, folder="pics", query_embeds=query, k=5, thumb=16)
        assert out.results[0]["file"] == name and out.results[0]["score"] > 0.9999
        assert len(out.results) == 5  # k is capped by the number of pictures


def test_search_folder_without_pictures_is_a_clear_error(ctx, clip):
    folder = ctx.roots.inputs[0] / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    (folder / "b.json").write_text("{}")
    with pytest.raises(NodeInputError, match="no pictures") as err:
        C.semantic_search(clip=clip, ctx=ctx, folder="docs", query="a red circle")
    assert "a.txt: not an image" in str(err.value) and err.value.input == "folder"
    with pytest.raises(NodeInputError, match="not found"):
        C.semantic_search(clip=clip, ctx=ctx, folder="missing", query="x")


# ---- CLIP score ---------------------------------------------------------------------------------------


def test_clip_score_is_100_cos_in_range(clip, tiny_open_clip):
    import open_clip

    images, captions = world_images(3)
    out = C.clip_score(clip=clip, images=images, prompts=captions)
    tokens = open_clip.get_tokenizer(TINY_NAME)(captions)
    with torch.no_grad():
        image_features = tiny_open_clip.encode_image(clip.prepare(images))
        text_features = tiny_open_clip.encode_text(tokens)
    expected = 100 * torch.nn.functional.cosine_similarity(image_features, text_features, dim=-1)
    assert np.allclose(out.scores, expected.numpy(), atol=1e-3)
    assert all(-100.0 <= s <= 100.0 for s in out.scores) and abs(out.mean - float(expected.mean())) < 1e-3
    one = C.clip_score(clip=clip, images=images, prompt="a red circle")
    assert len(one.scores) == 3
    with pytest.raises(NodeInputError, match="one per picture"):
        C.clip_score(clip=clip, images=images, prompts=captions[:2])


# ---- CLIP guidance ---------------------------------------------------------------------------------------


@pytest.fixture
def sd(ctx):
    parts = M.load_checkpoint(ctx, "tiny-sd")
    return parts


PROMPT = "a red circle"


def _sample(sd, clip, ctx, seed: int, scale: float, sampler: str = "euler", steps: int = 4) -> torch.Tensor:
    """The opened-up loop through the nodes: PrepareSampling → (PredictNoise → CFGCombine →
    ClipGuidance → SchedulerStep) × steps → VAEDecode."""
    positive = T.clip_text_encode(sd.clip, PROMPT)
    negative = T.clip_text_encode(sd.clip, "")
    latent = L.empty_latent_image(width=32, height=32, batch_size=1, vae=sd.vae)
    sampling, _ = S.prepare_sampling_node(sd.model, latent, seed=seed, steps=steps, sampler_name=sampler)
    while not sampling.done:
        cond, uncond = S.predict_noise_node(sampling, positive, negative)
        noise = G.cfg_combine_node(cond, uncond, cfg=3.0)
        if scale != 0.0:
            noise = C.clip_guide_noise(sampling, noise, sd.vae, clip, PROMPT, scale, cutn=4, clamp=0.05, seed=0)
        sampling, _ = S.scheduler_step_node(sampling, noise, ctx)
    return L.vae_decode(sd.vae, {"samples": sampling.latents})


def test_clip_guidance_moves_the_clip_score_toward_the_prompt(ctx, clip, sd):
    for seed in (0, 1, 2):
        plain = _sample(sd, clip, ctx, seed, 0.0)
        guided = _sample(sd, clip, ctx, seed, 1000.0)
        away = _sample(sd, clip, ctx, seed, -1000.0)  # the same push, reversed: the check can fail
        score = lambda img: C.clip_score(clip=clip, images=img, prompt=PROMPT).mean  # noqa: E731
        assert not torch.allclose(plain, guided)
        plain_s, guided_s, away_s = score(plain), score(guided), score(away)
        assert guided_s > plain_s + 2.0 and away_s < plain_s - 2.0, (seed, plain_s, guided_s, away_s)


def test_clip_guidance_with_an_alpha_space_sampler(ctx, clip, sd):
    """DPM++ 2M keeps its latents as √ᾱ·x0 + √(1−ᾱ)·ε (no input scaling): the other branch."""
    score = lambda img: C.clip_score(clip=clip, images=img, prompt=PROMPT).mean  # noqa: E731
    plain = _sample(sd, clip, ctx, 0, 0.0, sampler="dpmpp_2m", steps=3)
    guided = _sample(sd, clip, ctx, 0, 1000.0, sampler="dpmpp_2m", steps=3)
    assert score(guided) > score(plain) + 0.5


def test_clip_guidance_node_scale_zero_is_identity_and_bad_inputs(ctx, clip, sd):
    positive = T.clip_text_encode(sd.clip, PROMPT)
    latent = L.empty_latent_image(width=32, height=32, batch_size=1, vae=sd.vae)
    sampling, _ = S.prepare_sampling_node(sd.model, latent, seed=0, steps=2)
    cond, _ = S.predict_noise_node(sampling, positive, None)
    untouched = sampling.latents.clone()
    same = C.clip_guidance(sampling=sampling, noise=cond, vae=sd.vae, clip=clip, prompt=PROMPT, clip_scale=0.0)
    assert torch.equal(same, cond)
    moved = C.clip_guidance(sampling=sampling, noise=cond, vae=sd.vae, clip=clip, prompt=PROMPT, clip_scale=1000.0)
    assert moved.shape == cond.shape and not torch.equal(moved, cond)
    assert torch.equal(sampling.latents, untouched) and sampling.index == 0  # the state is not changed
    with pytest.raises(NodeInputError, match="see nothing"):
        C.clip_guidance(sampling=sampling, noise=cond, vae=sd.vae, clip=clip, cutn=0, overview=False)
    with pytest.raises(NodeInputError, match="prompt"):
        C.clip_guidance(sampling=sampling, noise=cond, vae=sd.vae, clip=clip, prompt="  ")


def test_spherical_distance_and_cutouts():
    a = torch.nn.functional.normalize(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert torch.allclose(C.spherical_distance(a, a), torch.zeros(4), atol=1e-6)
    # 2·arcsin(|a−b|/2)² = θ²/2 for the angle θ between them
    theta = torch.arccos((a[0] * a[1]).sum().clamp(-1, 1))
    assert torch.allclose(C.spherical_distance(a[:1], a[1:2])[0], theta**2 / 2, atol=1e-5)
    images = torch.rand(2, 3, 40, 56, requires_grad=True)
    cuts = C.make_cutouts(images, (16, 16), cutn=5, cut_pow=1.0, generator=torch.Generator().manual_seed(1))
    assert cuts.shape == (10, 3, 16, 16)
    cuts.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


# ---- as a graph, through the executor ------------------------------------------------------------------


def test_graph_through_the_executor_validates_runs_and_reuses_embeddings(ctx):
    from nodegraph.executor import Executor
    from nodegraph.graph import graph_from_data
    from nodegraph.registry import load_builtin_nodes

    _write_folder(ctx, n=3)
    registry = load_builtin_nodes()
    assert {"OpenClipLoader", "EmbedTexts", "SimilarityMatrix", "SemanticSearch", "ClipGuidance"} <= {s.type_name for s in registry}

    def graph(query: str) -> dict:
        return {
            "format": "nodegraph/1",
            "nodes": {
                "clip": {"type": "OpenClipLoader", "inputs": {"model_name": "tiny-clip", "pretrained": "none"}},
                "texts": {"type": "EmbedTexts", "inputs": {"clip": {"from": ["clip", "open_clip"]}, "texts": ["a red circle", "a blue square"]}},
                "sim": {"type": "SimilarityMatrix", "inputs": {"a": {"from": ["texts", "clip_embeds"]}, "filename": "clip/texts"}},
                "search": {"type": "SemanticSearch", "inputs": {"clip": {"from": ["clip", "open_clip"]}, "folder": "pics", "query": query, "k": 2, "thumb": 16}},
            },
        }

    executor = Executor(registry, ctx.roots, disk_cache=True)
    first = executor.run(graph_from_data(graph("a red circle")), targets=["sim", "search"])
    assert first.outputs["search"]["stats"]["embedded"] == 3
    assert Path(ctx.roots.outputs / "clip" / "texts.png").exists()
    second = executor.run(graph_from_data(graph("a blue square")), targets=["sim", "search"])
    assert "search" in second.executed and "sim" not in second.executed
    assert second.outputs["search"]["stats"] == {**second.outputs["search"]["stats"], "embedded": 0, "from_cache": 3}
