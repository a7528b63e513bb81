"""MiniSD's architecture and its training nodes: real networks, real (tiny) training runs.

Kept fast: a few steps on batches of a handful of world pictures."""

from __future__ import annotations

import json

import pytest
import torch

from nodegraph.context import CancelToken, RunContext
from nodegraph.errors import Cancelled
from nodegraph.nodes import minisd as M
from nodegraph.nodes import train as T
from nodegraph.nodes import world as W


def make_ctx(roots, signature="sig", on_progress=None, cancel=None):
    ctx = RunContext("1", "Train", roots, cancel or CancelToken(), on_progress)
    ctx.signature = signature
    return ctx


# ---- architecture ---------------------------------------------------------------------------


def test_tokenizer_makes_each_world_word_one_token():
    tok = M.build_tokenizer()
    for word in [*W.vocabulary(), ","]:
        ids = tok(word).input_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert len(ids) == 3, (word, tok.convert_ids_to_tokens(ids))
    caption = "a black square at the bottom left, a blue square at the bottom right and a white star at the top right"
    assert len(tok(caption).input_ids) == len(W.caption_words(caption)) + 2 <= M.MAX_TOKENS
    # unknown words still encode (byte fallback), never to the EOS id
    assert tok.eos_token_id not in tok("a purple cat").input_ids[1:-1]


def test_pipeline_folder_loads_offline_and_makes_a_64px_image(tmp_path):
    from diffusers import StableDiffusionPipeline

    folder = M.fresh_pipeline_folder(tmp_path / "minisd", seed=0)
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "model_index.json"):
        assert (folder / part).exists()
    assert M.folder_bytes(folder) <= 15 * 2**20
    pipe = StableDiffusionPipeline.from_pretrained(str(folder), local_files_only=True)
    assert pipe.vae_scale_factor == 8
    te = pipe.text_encoder.config
    assert te.hidden_size == pipe.unet.config.cross_attention_dim
    assert te.max_position_embeddings >= pipe.tokenizer.model_max_length
    assert te.eos_token_id == pipe.tokenizer.eos_token_id
    out = pipe("a red circle at the top left", num_inference_steps=3, height=64, width=64,
               generator=torch.Generator().manual_seed(0), output_type="np")
    image = out.images[0]
    assert image.shape == (64, 64, 3) and (image >= 0).all() and (image <= 1).all()


# ---- training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_vae(tmp_path_factory):
    """A VAE trained for a few steps (shared by the denoiser tests)."""
    from nodegraph.context import Roots

    base = tmp_path_factory.mktemp("vae")
    roots = Roots(inputs=[], outputs=base / "out", models=[base / "models"], cache=base / "cache")
    events = []
    ctx = make_ctx(roots, "vae-sig", lambda i, n, p, t: events.append((i, n, p, t)))
    images = T.holdout_images(0, 8, torch.device("cpu"))
    vae0 = T._seeded_init(1, M.build_vae)
    before = T.psnr(T.reconstruct(vae0.eval(), images), images)
    result = T.train_autoencoder(ctx, seed=1, steps=8, batch_size=4, learning_rate=3e-3, checkpoint_every=4, name="vae")
    return roots, result, events, before


def test_autoencoder_steps_improve_reconstruction_and_write_a_vae_folder(trained_vae):
    from diffusers import AutoencoderKL

    roots, result, events, before = trained_vae
    assert result.psnr > before + 1.0, (before, result.psnr)
    assert result.vae_path == "vae"
    folder = roots.models[0] / "vae"
    vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True)
    assert vae.config.scaling_factor != 1.0 and json.loads((folder / T.MARKER).read_text())["steps"] == 8
    z = vae.encode(torch.rand(1, 3, 64, 64)).latent_dist.mode()
    assert z.shape == (1, 4, 8, 8)
    plot = roots.outputs / "train" / "vae_loss.png"
    assert str(plot) == result.loss_plot and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [e[0] for e in events if e[0] > 0][-1] == 8 and "loss" in events[-1][3]
    assert any(e[2] is not None for e in events)  # reconstructions as previews at checkpoints


def _denoiser_eval_loss(vae, unet, text_encoder, tokenizer, seed=3):
    """Denoising loss on a fixed batch with fixed noise and timesteps."""
    batch = T.world_batch(99, 0, 8, torch.device("cpu"))
    with torch.no_grad():
        return float(T.denoiser_loss(vae, unet, text_encoder, tokenizer, M.build_train_scheduler(),
                                     batch["image"], batch["caption"], torch.Generator().manual_seed(seed), 0.0))


def test_denoiser_steps_reduce_loss_and_write_a_loadable_pipeline(trained_vae):
    roots, vae_result, _, _ = trained_vae
    vae = T.load_vae_folder(roots.models[0] / vae_result.vae_path, torch.device("cpu"))
    tok = M.build_tokenizer()
    te0, unet0 = T._seeded_init(2, lambda: (M.build_text_encoder(tok), M.build_unet()))
    before = _denoiser_eval_loss(vae, unet0.eval(), te0.eval(), tok)
    ctx = make_ctx(roots, "den-1")
    result = T.train_denoiser(ctx, vae=vae_result.vae_path, seed=2, steps=8, batch_size=8, learning_rate=2e-3,
                              checkpoint_every=4, name="den")
    assert result.model_path == "den" and (roots.outputs / "train" / "den_loss.png").exists()
    pipe = M.load_pipeline(roots.models[0] / "den")
    after = _denoiser_eval_loss(pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer)
    assert after < before, (before, after)
    image = pipe("a red circle at the top left", num_inference_steps=3, height=64, width=64,
                 generator=torch.Generator().manual_seed(0), output_type="np").images[0]
    assert image.shape == (64, 64, 3)


def test_cancelled_training_resumes_from_checkpoint_with_identical_result(tmp_path):
    from nodegraph.context import Roots

    def roots_in(name):
        base = tmp_path / name
        return Roots(inputs=[], outputs=base / "out", models=[base / "models"], cache=base / "cache")

    kwargs = dict(seed=5, steps=4, batch_size=1, learning_rate=2e-3, checkpoint_every=2, name="v")
    straight_roots = roots_in("straight")
    straight = T.train_autoencoder(make_ctx(straight_roots, "s"), **kwargs)

    roots = roots_in("resumed")
    cancel = CancelToken()
    seen = []

    def on_progress(step, total, preview, text):
        seen.append(step)
        if step == 3:
            cancel.cancel()

    with pytest.raises(Cancelled):
        T.train_autoencoder(make_ctx(roots, "r", on_progress, cancel), **kwargs)
    state = T.Checkpoint(roots.cache / "work" / "r").load()
    assert state["step"] == 3 and len(state["losses"]) == 3  # the cancel saved every finished step
    assert not (roots.models[0] / "v").exists()  # nothing half-published

    resumed_steps = []
    resumed = T.train_autoencoder(make_ctx(roots, "r", lambda s, n, p, t: resumed_steps.append(s)), **kwargs)
    assert resumed_steps[0] == 3 and 1 not in resumed_steps  # continued, did not start over
    assert resumed.psnr == straight.psnr
    from safetensors.torch import load_file

    wa = load_file(straight_roots.models[0] / "v" / "diffusion_pytorch_model.safetensors")
    wb = load_file(roots.models[0] / "v" / "diffusion_pytorch_model.safetensors")
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_publish_refuses_to_replace_a_folder_it_did_not_write(roots):
    (roots.models[0] / "mine").mkdir()
    ctx = make_ctx(roots)
    with pytest.raises(Exception, match="not written by a trainer"):
        T.publish(ctx, "mine", lambda d: None, {})
    with pytest.raises(Exception, match="plain folder name"):
        T.publish(ctx, "../escape", lambda d: None, {})
