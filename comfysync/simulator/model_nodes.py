"""Stand-in SD nodes: no model, no torch; they only mimic the protocol of a txt2img graph.

CheckpointLoaderSimple -> CLIPTextEncode -> EmptyLatentImage -> KSampler -> VAEDecode runs
against the simulator with the same frames as real ComfyUI (int `progress` per sampler step,
cached loader/encoders on a new seed); so do SDXL's KSamplerAdvanced base and refiner, and
img2img's VAEEncode. The "image" is deterministic colour noise derived from the seed, size
and prompts (and the encoded image), so identical inputs give identical pixels.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass

from PIL import Image

from .imaging import ImageBatch
from .nodes import NodeContext, NodeImpl, NodeResult


@dataclass(frozen=True)
class FakeModel:
    """Opaque MODEL/CLIP/VAE handle; only its name matters."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"<comfy.{self.kind} object for {self.name}>"


@dataclass(frozen=True)
class FakeConditioning:
    """CONDITIONING stand-in: remembers the prompt text."""

    text: str


@dataclass(frozen=True)
class FakeLatent:
    """LATENT stand-in: size plus a seed that fixes the decoded noise."""

    width: int
    height: int
    batch_size: int
    seed: int = 0
    salt: str = ""

    def __str__(self) -> str:
        return str(
            {"samples": f"<latent {self.batch_size}x4x{self.height // 8}x{self.width // 8}>"}
        )


def checkpoint_loader(ctx: NodeContext, ckpt_name: str):
    return NodeResult(
        (FakeModel("MODEL", ckpt_name), FakeModel("CLIP", ckpt_name), FakeModel("VAE", ckpt_name))
    )


def clip_text_encode(ctx: NodeContext, text: str, clip: FakeModel):
    return NodeResult((FakeConditioning(text),))


def empty_latent(ctx: NodeContext, width: int, height: int, batch_size: int = 1):
    return NodeResult((FakeLatent(width, height, batch_size),))


def _preview(latent: FakeLatent, step: int) -> Image.Image:
    rng = random.Random(f"{latent.seed}/{latent.salt}/{step}")
    return (
        Image.frombytes("RGB", (512, 512), rng.randbytes(512 * 512 * 3))
        .reduce(8)
        .resize((512, 512))
    )


async def ksampler(
    ctx: NodeContext,
    model: FakeModel,
    seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: FakeConditioning,
    negative: FakeConditioning,
    latent_image: FakeLatent,
    denoise: float = 1.0,
):
    text = (
        f"{model.name}|{positive.text}|{negative.text}|{cfg}|{sampler_name}|{scheduler}|{denoise}"
    )
    return NodeResult((await _sample(ctx, latent_image, seed, steps, text),))


async def ksampler_advanced(
    ctx: NodeContext,
    model: FakeModel,
    add_noise: str,
    noise_seed: int,
    steps: int,
    cfg: float,
    sampler_name: str,
    scheduler: str,
    positive: FakeConditioning,
    negative: FakeConditioning,
    latent_image: FakeLatent,
    start_at_step: int,
    end_at_step: int,
    return_with_leftover_noise: str,
):
    # Only the steps between start and end run (a base/refiner split), as in ComfyUI.
    runs = max(0, min(end_at_step, steps) - start_at_step)
    if runs == 0:
        return NodeResult((latent_image,))
    seed = noise_seed if add_noise == "enable" else latent_image.seed
    text = (
        f"{model.name}|{positive.text}|{negative.text}|{cfg}|{sampler_name}|{scheduler}"
        f"|{start_at_step}-{end_at_step}|{return_with_leftover_noise}"
    )
    return NodeResult((await _sample(ctx, latent_image, seed, runs, text),))


async def _sample(
    ctx: NodeContext, latent: FakeLatent, seed: int, steps: int, text: str
) -> FakeLatent:
    """The sampled latent, after `steps` progress frames (with previews when they are on)."""
    if latent.salt:  # an encoded image or an earlier sampler shapes the result too
        text += f"|{latent.salt}"
    salt = hashlib.sha256(text.encode()).hexdigest()[:16]
    out = FakeLatent(latent.width, latent.height, latent.batch_size, seed, salt)
    # The node's share of the configured delay is spread over the steps.
    step_delay = ctx.delay / max(1, steps)
    for step in range(1, steps + 1):
        if step_delay:
            await asyncio.sleep(step_delay)
        preview = ("JPEG", _preview(out, step)) if ctx.previews else None
        await ctx.progress(step, steps, preview)
    return out


def vae_encode(ctx: NodeContext, pixels: ImageBatch, vae: FakeModel):
    """A latent the size of the image, marked with its pixels so img2img depends on them."""
    digest = hashlib.sha256(b"".join(frame.tobytes() for frame in pixels.frames))
    width, height = pixels.size
    return NodeResult(
        (FakeLatent(width, height, len(pixels.frames), salt=digest.hexdigest()[:16]),)
    )


def _noise(latent: FakeLatent, index: int) -> Image.Image:
    rng = random.Random(f"{latent.seed}/{latent.salt}/{index}")
    w, h = latent.width, latent.height
    return Image.frombytes("RGB", (w, h), rng.randbytes(w * h * 3))


async def vae_decode(ctx: NodeContext, samples: FakeLatent, vae: FakeModel):
    frames = tuple(_noise(samples, i) for i in range(samples.batch_size))
    return NodeResult((ImageBatch(frames),))


MODEL_NODES: dict[str, NodeImpl] = {
    "CheckpointLoaderSimple": NodeImpl(checkpoint_loader),
    "CLIPTextEncode": NodeImpl(clip_text_encode),
    "EmptyLatentImage": NodeImpl(empty_latent),
    "KSampler": NodeImpl(ksampler, paced=True),
    "KSamplerAdvanced": NodeImpl(ksampler_advanced, paced=True),
    "VAEDecode": NodeImpl(vae_decode),
    "VAEEncode": NodeImpl(vae_encode),
}
