"""The world CLIP: contrastive training on world pictures, its open_clip folder, and its text
tower becoming MiniSD's (frozen) text encoder. Real networks, a few real training steps."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from nodegraph.context import CancelToken, RunContext, Roots
from nodegraph.nodes import clip_space as C
from nodegraph.nodes import minisd as M
from nodegraph.nodes import train as T


def _roots(base):
    roots = Roots(inputs=[], outputs=base / "out", models=[base / "models"], cache=base / "cache")
    roots.models[0].mkdir(parents=True, exist_ok=True)
    return roots


def _ctx(roots, signature="clip-sig"):
    ctx = RunContext("1", "TrainWorldClip", roots, CancelToken(), None)
    ctx.signature = signature
    return ctx


def _fresh_clip(seed=0):
    import open_clip

    tokenizer = M.build_tokenizer()
    return T._seeded_init(seed, lambda: open_clip.CLIP(**M.world_clip_config(tokenizer))).eval(), tokenizer


def test_text_tower_becomes_a_transformers_text_encoder_with_identical_token_states():
    clip, tokenizer = _fresh_clip()
    with torch.no_grad():  # random weights are too uniform to tell a wrong mapping apart: stir them
        for p in clip.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    encoder = M.text_encoder_from_clip(clip, tokenizer).eval()
    ids = M.token_ids(tokenizer, ["a large red circle at the top left", "a blue square left of a green star", ""])
    with torch.no_grad():
        ours = encoder(ids)[0]
        x = clip.token_embedding(ids) + clip.positional_embedding
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
    assert ours.shape == (3, M.MAX_TOKENS, M.TEXT_WIDTH)
    assert torch.allclose(ours, x, atol=1e-5), (ours - x).abs().max()


def test_contrastive_loss_is_low_when_pictures_and_texts_match_and_treats_repeated_texts_as_right():
    clip, tokenizer = _fresh_clip()
    images = torch.rand(4, 3, 64, 64)
    texts = ["a red circle", "a red circle", "a blue star", "a green square"]
    loss = T.contrastive_loss(clip, tokenizer, images, texts)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # Towers that agree perfectly: the only loss left is the doubt between the two pictures
    # sharing "a red circle" (the soft target puts 1/2 on each): ln 2 on 2 of the 4 rows.
    class Towers(torch.nn.Module):
        def __init__(self, image_rows, text_rows):
            super().__init__()
            self.logit_scale = torch.nn.Parameter(torch.tensor(4.6))
            self.image_rows, self.text_rows = image_rows, text_rows

        def encode_image(self, pixels):
            return torch.eye(4)[self.image_rows]

        def encode_text(self, ids):
            return torch.eye(4)[self.text_rows][: ids.shape[0]]

    matched = T.contrastive_loss(Towers([0, 0, 1, 2], [0, 0, 1, 2]), tokenizer, images, texts)
    assert abs(float(matched.detach()) - math.log(2) / 2) < 1e-3, matched
    swapped = T.contrastive_loss(Towers([0, 0, 1, 2], [0, 0, 2, 1]), tokenizer, images, texts)
    assert swapped > matched + 10, swapped


def test_hard_negatives_swap_exactly_one_shape_or_position():
    generator = torch.Generator().manual_seed(0)
    for text in ["a red circle", "a large red circle at the top left", "a blue square left of a green star",
                 "a green star at the top, a purple cross at the bottom left and a white square at the right"]:
        for _ in range(10):
            negative = T.hard_negative(text, generator)
            assert negative != text
            a, b = text.replace(",", "").split(), negative.replace(",", "").split()
            changed = [(x, y) for x, y in zip(a, b) if x != y]
            assert len(a) - len(b) in (-1, 0, 1)  # "top left" ↔ "top" changes the length by one word
            assert changed, (text, negative)
            assert all(x in T.world.SHAPES + tuple(" ".join(T.world.POSITIONS).split()) for x, _ in changed[:1])


@pytest.fixture(scope="module")
def trained_clip(tmp_path_factory):
    roots = _roots(tmp_path_factory.mktemp("world-clip"))
    pictures_ctx = _ctx(roots)
    before = None
    images, truth = T.one_object_pictures(0, 48)
    clip0, tokenizer = _fresh_clip(seed=4)
    batch_images, batch_texts = T.WorldPictures.build(pictures_ctx, 4, 96).batch(32, T.step_generator(4, 0), torch.device("cpu"))
    with torch.no_grad():  # train mode: BatchNorm uses the batch's statistics, as in training
        before = float(T.contrastive_loss(clip0.train(), tokenizer, batch_images, batch_texts))
    result = T.train_world_clip(_ctx(roots), seed=4, steps=20, batch_size=32, learning_rate=2e-3, dataset_size=96,
                                checkpoint_every=10, name="wclip")
    return roots, result, before, (batch_images, batch_texts)


def test_world_clip_steps_reduce_the_loss_and_write_a_folder_openclip_loader_reads(trained_clip):
    roots, result, before, (images, texts) = trained_clip
    folder = roots.models[0] / "wclip"
    assert result.clip_path == "wclip" and (roots.outputs / "train" / "wclip_loss.png").exists()
    assert json.loads((folder / T.MARKER).read_text())["steps"] == 20
    assert 0.0 <= result.zero_shot_accuracy <= 1.0
    handle = C.load_open_clip(_ctx(roots, "load"), "wclip")
    assert handle.tokenizer(["a red circle"])[0, :4].tolist() == M.token_ids(M.build_tokenizer(), ["a red circle"])[0, :4].tolist()
    with torch.no_grad():
        after = float(T.contrastive_loss(copy.deepcopy(handle.model).float().train(), M.build_tokenizer(), images, texts))
    assert after < before, (before, after)
    vectors = handle.encode_texts(["a red circle", "a blue star"])
    assert torch.allclose(vectors.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert handle.image_size == (64, 64)
    # open_clip's own loaders read the folder as it is: weights, config and tokenizer
    import open_clip

    model = open_clip.create_model(f"local-dir:{folder}")
    assert torch.equal(model.state_dict()["text_projection"], handle.model.state_dict()["text_projection"].float())
    theirs = open_clip.get_tokenizer(f"local-dir:{folder}")(["a red circle"])
    assert theirs.tolist() == handle.tokenizer(["a red circle"]).tolist()


def test_world_pictures_are_drawn_once_and_single_objects_get_short_captions(tmp_path):
    roots = _roots(tmp_path)
    pictures = T.WorldPictures.build(_ctx(roots), 0, 40)
    assert pictures.images.dtype == torch.uint8 and pictures.images.shape == (40, 3, 64, 64)
    singles = [c for c in pictures.captions if len(c) > 1]
    assert singles and all(len(c) == 4 and min(c, key=len).count(" ") == 2 for c in singles)  # "a red circle"
    again = T.WorldPictures.build(_ctx(roots), 0, 40)  # read back from the work folder, not redrawn
    assert torch.equal(again.images, pictures.images) and again.captions == pictures.captions
    assert (roots.cache / "work" / "clip-sig" / "world_pictures_40.pt").exists()


def test_denoiser_with_a_world_clip_keeps_its_text_tower_frozen(tmp_path, trained_clip):
    import shutil

    clip_roots, _, _, _ = trained_clip
    roots = _roots(tmp_path)
    shutil.copytree(clip_roots.models[0] / "wclip", roots.models[0] / "wclip")
    vae = M.build_vae()
    vae.register_to_config(scaling_factor=0.5)
    vae.save_pretrained(str(roots.models[0] / "vae"))
    T.train_denoiser(_ctx(roots, "den"), vae="vae", clip="wclip", seed=1, steps=3, batch_size=4, dataset_size=16,
                     checkpoint_every=3, name="den")
    pipe = M.load_pipeline(roots.models[0] / "den", torch.device("cpu"))
    clip, _ = C.read_folder_model(roots.models[0] / "wclip")
    expected = M.text_encoder_from_clip(clip, pipe.tokenizer).state_dict()
    got = pipe.text_encoder.state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert json.loads((roots.models[0] / "den" / T.MARKER).read_text())["text_encoder"] == "text tower of wclip"
