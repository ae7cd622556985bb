"""Prompt validation with ComfyUI's exact error bodies (POST /prompt)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Error = dict[str, Any]


@dataclass
class ValidationResult:
    """Outcome of validate_prompt: ok flag, top-level error, outputs to run, node errors."""

    ok: bool
    error: Error | None
    outputs: list[str]
    node_errors: dict[str, Any]


class Validator:
    """Validate an API-format prompt against one version's object_info."""

    def __init__(
        self,
        object_info: dict[str, Any],
        v027: bool,
        traceback: list[str],
        image_exists: Callable[[str], bool],
        output_order: list[str],
    ) -> None:
        self.info = object_info
        self.v027 = v027
        self.traceback = traceback
        self.image_exists = image_exists
        self.output_order = output_order

    # -- helpers -------------------------------------------------------------------------
    def _input_spec(self, class_type: str, name: str) -> tuple[Any, str, dict[str, Any]]:
        inputs = self.info[class_type]["input"]
        for category in ("required", "optional", "hidden"):
            spec = inputs.get(category, {}).get(name)
            if spec is not None:
                if isinstance(spec, str):
                    return spec, category, {}
                return spec[0], category, (spec[1] if len(spec) > 1 else {})
        return None, "", {}

    @staticmethod
    def _types_match(received: Any, expected: Any) -> bool:
        if received == expected:
            return True
        if not isinstance(received, str) or not isinstance(expected, str):
            return False
        got = {t.strip() for t in received.split(",")}
        want = {t.strip() for t in expected.split(",")}
        return "*" in got or "*" in want or bool(got & want)

    def _missing_class(self, node_id: str, node: Any) -> Error:
        title = None
        meta = node.get("_meta") if isinstance(node, dict) else None
        if isinstance(meta, dict):
            title = meta.get("title")
        if "class_type" not in node:
            if not self.v027:
                return {
                    "type": "invalid_prompt",
                    "message": "Cannot execute because a node is missing the class_type property.",
                    "details": f"Node ID '#{node_id}'",
                    "extra_info": {},
                }
            shown = title or f"ID #{node_id}"
            return {
                "type": "missing_node_type",
                "message": f"Node '{shown}' has no class_type. The workflow may be corrupted "
                "or a custom node is missing.",
                "details": f"Node ID '#{node_id}'",
                "extra_info": {"node_id": node_id, "class_type": None, "node_title": shown},
            }
        class_type = node["class_type"]
        if not self.v027:
            return {
                "type": "invalid_prompt",
                "message": f"Cannot execute because node {class_type} does not exist.",
                "details": f"Node ID '#{node_id}'",
                "extra_info": {},
            }
        shown = title or class_type
        return {
            "type": "missing_node_type",
            "message": f"Node '{shown}' not found. The custom node may not be installed.",
            "details": f"Node ID '#{node_id}'",
            "extra_info": {"node_id": node_id, "class_type": class_type, "node_title": shown},
        }

    # -- per node ------------------------------------------------------------------------
    def _validate_node(
        self, prompt: dict[str, Any], node_id: str, validated: dict[str, Any], stack: list[str]
    ) -> tuple[bool, list[Error], str]:
        if node_id in validated:
            return validated[node_id]
        stack.append(node_id)
        try:
            return self._validate_node_inner(prompt, node_id, validated, stack)
        finally:
            stack.pop()

    def _cycle(
        self, prompt: dict[str, Any], stack: list[str], target: str, validated: dict[str, Any]
    ) -> None:
        cycle = stack[stack.index(target) :]
        if not self.v027:
            # 0.3.64 has no cycle check; its recursive validation overflows the stack.
            validated.setdefault(
                target,
                (
                    False,
                    [
                        {
                            "type": "exception_during_inner_validation",
                            "message": "Exception when validating inner node",
                            "details": "maximum recursion depth exceeded",
                            "extra_info": {
                                "exception_message": "maximum recursion depth exceeded",
                                "exception_type": "RecursionError",
                                "traceback": self.traceback[1:],
                            },
                        }
                    ],
                    target,
                ),
            )
            return
        path = [*cycle, cycle[0]]
        details = " -> ".join(f"{n} ({prompt[n]['class_type']})" for n in path)
        for n in cycle:
            err = {
                "type": "dependency_cycle",
                "message": "Dependency cycle detected",
                "details": details,
                "extra_info": {"node_id": n, "cycle_nodes": list(cycle)},
            }
            validated[n] = (False, [err], n)

    def _validate_node_inner(
        self, prompt: dict[str, Any], unique_id: str, validated: dict[str, Any], stack: list[str]
    ):
        node = prompt[unique_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        info = self.info[class_type]
        spec = info["input"]
        names = list(spec.get("required", {})) + list(spec.get("optional", {}))
        custom_inputs = ("image",) if class_type == "LoadImage" else ()
        errors: list[Error] = []
        valid = True
        for x in names:
            input_type, category, extra = self._input_spec(class_type, x)
            if x not in inputs:
                if category == "required":
                    errors.append(
                        {
                            "type": "required_input_missing",
                            "message": "Required input is missing",
                            "details": f"{x}",
                            "extra_info": {"input_name": x},
                        }
                    )
                continue
            val = inputs[x]
            config = [input_type, extra]
            if isinstance(val, list):
                if len(val) != 2:
                    errors.append(
                        {
                            "type": "bad_linked_input",
                            "message": "Bad linked input, must be a length-2 list of "
                            "[node_id, slot_index]",
                            "details": f"{x}",
                            "extra_info": {
                                "input_name": x,
                                "input_config": config,
                                "received_value": val,
                            },
                        }
                    )
                    continue
                o_id = val[0]
                o_class = prompt[o_id]["class_type"]
                received = self.info[o_class]["output"][val[1]]
                if not self._types_match(received, input_type):
                    errors.append(
                        {
                            "type": "return_type_mismatch",
                            "message": "Return type mismatch between linked nodes",
                            "details": f"{x}, received_type({received}) mismatch "
                            f"input_type({input_type})",
                            "extra_info": {
                                "input_name": x,
                                "input_config": config,
                                "received_type": received,
                                "linked_node": val,
                            },
                        }
                    )
                    continue
                if o_id in stack:
                    self._cycle(prompt, stack, o_id, validated)
                    valid = False
                    continue
                try:
                    if self._validate_node(prompt, o_id, validated, stack)[0] is False:
                        valid = False
                except Exception as ex:  # noqa: BLE001 - mirrors ComfyUI's catch-all
                    valid = False
                    validated[o_id] = (
                        False,
                        [
                            {
                                "type": "exception_during_inner_validation",
                                "message": "Exception when validating inner node",
                                "details": str(ex),
                                "extra_info": {
                                    "input_name": x,
                                    "input_config": config,
                                    "exception_message": str(ex),
                                    "exception_type": _type_name(ex),
                                    "traceback": self.traceback[1:],
                                    "linked_node": val,
                                },
                            }
                        ],
                        o_id,
                    )
                continue
            err = self._check_value(inputs, x, val, input_type, extra, config, x in custom_inputs)
            if err:
                errors.append(err)
        if custom_inputs and "image" in inputs and not isinstance(inputs["image"], list):
            if not self.image_exists(str(inputs["image"])):
                errors.append(
                    {
                        "type": "custom_validation_failed",
                        "message": "Custom validation failed for node",
                        "details": f"image - Invalid image file: {inputs['image']}",
                        "extra_info": {"input_name": "image"},
                    }
                )
        previous = validated.get(unique_id)
        if previous is not None and previous[1]:
            # Keep errors recorded while this node was on the stack (dependency cycle).
            errors = previous[1] + errors
        ret = (False, errors, unique_id) if errors or valid is not True else (True, [], unique_id)
        validated[unique_id] = ret
        return ret

    def _check_value(
        self,
        inputs: dict[str, Any],
        x: str,
        val: Any,
        input_type: Any,
        extra: dict[str, Any],
        config: list[Any],
        custom: bool,
    ) -> Error | None:
        try:
            if isinstance(val, dict) and "__value__" in val:
                val = val["__value__"]
                inputs[x] = val
            converters = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
            if isinstance(input_type, str) and input_type in converters:
                val = converters[input_type](val)
                inputs[x] = val
        except Exception as ex:  # noqa: BLE001 - any conversion failure is reported
            return {
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {input_type} value",
                "details": f"{x}, {val}, {ex}",
                "extra_info": {
                    "input_name": x,
                    "input_config": config,
                    "received_value": val,
                    "exception_message": str(ex),
                },
            }
        if custom:
            return None
        if "min" in extra and val < extra["min"]:
            return {
                "type": "value_smaller_than_min",
                "message": "Value {} smaller than min of {}".format(val, extra["min"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": config, "received_value": val},
            }
        if "max" in extra and val > extra["max"]:
            return {
                "type": "value_bigger_than_max",
                "message": "Value {} bigger than max of {}".format(val, extra["max"]),
                "details": f"{x}",
                "extra_info": {"input_name": x, "input_config": config, "received_value": val},
            }
        options = None
        if isinstance(input_type, list):
            options = input_type
        elif input_type == "COMBO":
            options = extra.get("options", [])
        if options is not None and val not in options:
            list_info = str(options)
            input_config: Any = config
            if len(options) > 20:
                list_info = f"(list of length {len(options)})"
                input_config = None
            shown = repr(val) if self.v027 else f"'{val}'"
            return {
                "type": "value_not_in_list",
                "message": "Value not in list",
                "details": f"{x}: {shown} not in {list_info}",
                "extra_info": {
                    "input_name": x,
                    "input_config": input_config,
                    "received_value": val,
                },
            }
        return None

    # -- whole prompt --------------------------------------------------------------------
    def validate(self, prompt: Any, partial: list[str] | None) -> ValidationResult:
        """Validate like ComfyUI; unexpected shapes raise (the server answers 500 then)."""
        outputs: list[str] = []
        for x in prompt:
            node = prompt[x]
            if "class_type" not in node or self.info.get(node["class_type"]) is None:
                return ValidationResult(False, self._missing_class(x, node), [], {})
            if self.info[node["class_type"]].get("output_node") is True:
                if partial is None or x in partial:
                    outputs.append(x)
        if not outputs:
            return ValidationResult(
                False,
                {
                    "type": "prompt_no_outputs",
                    "message": "Prompt has no outputs",
                    "details": "",
                    "extra_info": {},
                },
                [],
                {},
            )
        order = {n: i for i, n in enumerate(self.output_order)}
        outputs.sort(key=lambda n: order.get(n, len(order)))

        good: list[str] = []
        failed: list[tuple[str, list[Error]]] = []
        node_errors: dict[str, Any] = {}
        validated: dict[str, Any] = {}
        for o in outputs:
            try:
                valid, reasons, _ = self._validate_node(prompt, o, validated, [])
            except Exception as ex:  # noqa: BLE001 - mirrors ComfyUI's catch-all
                valid = False
                reasons = [
                    {
                        "type": "exception_during_validation",
                        "message": "Exception when validating node",
                        "details": str(ex),
                        "extra_info": {
                            "exception_type": _type_name(ex),
                            "traceback": list(self.traceback),
                        },
                    }
                ]
                validated[o] = (False, reasons, o)
            if valid is True:
                good.append(o)
                continue
            failed.append((o, reasons))
            # ComfyUI walks every node validated so far, so earlier failures collect later
            # outputs in dependent_outputs too; kept for fidelity.
            for node_id, (ok, errs, _) in validated.items():
                if ok is not True and errs:
                    if node_id not in node_errors:
                        node_errors[node_id] = {
                            "errors": errs,
                            "dependent_outputs": [],
                            "class_type": prompt[node_id]["class_type"],
                        }
                    node_errors[node_id]["dependent_outputs"].append(o)
        if not good:
            details = "\n".join(
                f"{e['message']}: {e['details']}" for _, errs in failed for e in errs
            )
            return ValidationResult(
                False,
                {
                    "type": "prompt_outputs_failed_validation",
                    "message": "Prompt outputs failed validation",
                    "details": details,
                    "extra_info": {},
                },
                [],
                node_errors,
            )
        return ValidationResult(True, None, good, node_errors)


def _type_name(ex: BaseException) -> str:
    cls = type(ex)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def image_exists_in(dirs: Any) -> Callable[[str], bool]:
    """LoadImage's check: does the (annotated) input file exist?"""
    return lambda name: os.path.isfile(dirs.annotated_input(name))
