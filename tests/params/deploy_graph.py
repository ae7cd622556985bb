"""A ComfyUI Deploy style API graph (as exported): SD 1.5 img2img with a LoRA."""

from __future__ import annotations

import copy


def _ext(cls: str, title: str, **inputs) -> dict:
    return {
        "inputs": inputs,
        "class_type": f"ComfyUIDeployExternal{cls}",
        "_meta": {"title": title},
    }


GRAPH = {
    "3": {
        "inputs": {
            "seed": ["20", 0],
            "steps": ["21", 0],
            "cfg": ["22", 0],
            "sampler_name": "euler",
            "scheduler": "normal",
            "denoise": ["22", 0],
            "model": ["10", 0],
            "positive": ["6", 0],
            "negative": ["7", 0],
            "latent_image": ["12", 0],
        },
        "class_type": "KSampler",
        "_meta": {"title": "KSampler"},
    },
    "4": {
        "inputs": {"ckpt_name": ["24", 0]},
        "class_type": "CheckpointLoaderSimple",
        "_meta": {"title": "Load Checkpoint"},
    },
    "6": {
        "inputs": {"text": ["23", 0], "clip": ["10", 1]},
        "class_type": "CLIPTextEncode",
        "_meta": {"title": "CLIP Text Encode (Prompt)"},
    },
    "7": {
        "inputs": {"text": "blurry", "clip": ["10", 1]},
        "class_type": "CLIPTextEncode",
        "_meta": {"title": "CLIP Text Encode (Prompt)"},
    },
    "8": {
        "inputs": {"samples": ["3", 0], "vae": ["4", 2]},
        "class_type": "VAEDecode",
        "_meta": {"title": "VAE Decode"},
    },
    "9": {
        "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
        "class_type": "SaveImage",
        "_meta": {"title": "Save Image"},
    },
    "10": {
        "inputs": {
            "lora_name": ["25", 0],
            "strength_model": ["26", 0],
            "strength_clip": 1.0,
            "model": ["4", 0],
            "clip": ["4", 1],
        },
        "class_type": "LoraLoader",
        "_meta": {"title": "Load LoRA"},
    },
    "12": {
        "inputs": {"pixels": ["27", 0], "vae": ["4", 2]},
        "class_type": "VAEEncode",
        "_meta": {"title": "VAE Encode"},
    },
    "13": {
        "inputs": {"image": ["28", 0]},
        "class_type": "SplitImageWithAlpha",
        "_meta": {"title": "Split Image with Alpha"},
    },
    "14": {
        "inputs": {"filename_prefix": "mask", "images": ["13", 0]},
        "class_type": "SaveImage",
        "_meta": {"title": "Save Image"},
    },
    "20": _ext("NumberInt", "seed", input_id="seed", default_value=42, display_name="Seed"),
    "21": _ext("NumberInt", "steps", input_id="steps", default_value=20, description="Steps"),
    "22": _ext(
        "NumberSlider",
        "strength",
        input_id="strength",
        default_value=0.6,
        min_value=0.1,
        max_value=0.9,
    ),
    "23": _ext("Text", "prompt", input_id="prompt", default_value="a lighthouse"),
    "24": _ext(
        "Checkpoint",
        "checkpoint",
        input_id="checkpoint",
        default_value="v1-5-pruned-emaonly.safetensors",
    ),
    "25": _ext(
        "Lora",
        "lora",
        input_id="lora",
        default_lora_name="detail.safetensors",
        lora_url="",
        lora_save_name="",
    ),
    "26": _ext("Number", "lora strength", input_id="lora_strength", default_value=0.8),
    "27": _ext(
        "Image",
        "input image",
        input_id="input_image",
        default_value_url="",
        display_name="Input image",
    ),
    "28": _ext("ImageAlpha", "cutout", input_id="cutout", description="RGBA cut-out"),
}


def deploy_graph() -> dict:
    """A fresh copy of the graph."""
    return copy.deepcopy(GRAPH)
