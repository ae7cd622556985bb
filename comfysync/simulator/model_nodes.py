"""Stand-in SD nodes: no model, no torch; they only mimic the protocol of a txt2img graph.

CheckpointLoaderSimple -> CLIPTextEncode -> EmptyLatentImage -> KSampler -> VAEDecode runs
against the simulator with the same frames as real ComfyUI (int `progress` per sampler step,
cached loader/encoders on a new seed). The "image" is deterministic colour noise derived
from the seed, size and prompts, so identical inputs give identical pixels.
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
    salt = hashlib.sha256(
        f"{model.name}|{positive.text}|{negative.text}|{cfg}|{sampler_name}|{scheduler}|{denoise}".encode()
    ).hexdigest()[:16]
    out = FakeLatent(latent_image.width, latent_image.height, latent_image.batch_size, seed, salt)
    # The node's share of the configured delay is spread over the steps.
    step_delay = ctx.delay / max(1, steps)
    for step in range(1, steps + 1):
        if step_delay:
            await asyncio.sleep(step_delay)
        preview = ("JPEG", _preview(out, step)) if ctx.previews else None
        await ctx.progress(step, steps, preview)
    return NodeResult((out,))


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
    "VAEDecode": NodeImpl(vae_decode),
}
