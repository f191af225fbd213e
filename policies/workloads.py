"""Containers wherever a resource declares them: Kubernetes workloads, SageMaker models, Vertex AI deployments,
ECS task definitions and Lambda functions, in one shape for the rules (images, environment, commands).

Pure Python (no Pulumi import). Values may be `props.UNKNOWN`; the rules decide what an unknown means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from .props import UNKNOWN, containers as k8s_containers, get, items

SAGEMAKER_MODEL = "aws:sagemaker/model:Model"
VERTEX_DEPLOYMENT = "gcp:vertex/aiEndpointWithModelGardenDeployment:AiEndpointWithModelGardenDeployment"
ECS_TASK = "aws:ecs/taskDefinition:TaskDefinition"
LAMBDA = "aws:lambda/function:Function"


@dataclass
class EnvVar:
    path: str  # e.g. spec.template.spec.containers[0].env[3] or primaryContainer.environment.HF_TOKEN
    name: Any
    value: Any  # None when the variable comes from a reference (valueFrom / secrets)
    from_reference: bool = False


@dataclass
class Container:
    path: str  # where the container is declared
    name: str  # container name, or a label like "primaryContainer"
    image: Any  # str, UNKNOWN or None
    image_path: str
    env: list[EnvVar] = field(default_factory=list)
    env_path: str = ""
    env_unknown: bool = False  # the environment list itself is unknown at preview
    env_from: bool = False  # variables also come from a ConfigMap/Secret the resource does not show
    command: list[Any] = field(default_factory=list)
    init: bool = False


def _env_list(path: str, env: Any) -> list[EnvVar]:
    out = []
    if isinstance(env, list):
        for i, e in enumerate(env):
            if isinstance(e, dict):
                ref = e.get("valueFrom") is not None
                out.append(EnvVar(f"{path}[{i}]", e.get("name"), None if ref else e.get("value"), ref))
    return out


def _env_dict(path: str, env: Any) -> list[EnvVar]:
    if not isinstance(env, dict):
        return []
    return [EnvVar(f"{path}.{k}", k, v) for k, v in env.items()]


def containers_of(resource_type: str, props: Any) -> list[Container]:
    out: list[Container] = []
    for path, c in k8s_containers(resource_type, props):
        if not isinstance(c, dict):
            continue
        env = c.get("env")
        command = [x for x in (c.get("command") or []) + (c.get("args") or [])] if isinstance(c.get("command") or [], list) \
            and isinstance(c.get("args") or [], list) else []
        out.append(Container(path=path, name=str(c.get("name") or path), image=c.get("image"), image_path=f"{path}.image",
                             env=_env_list(f"{path}.env", env), env_path=f"{path}.env", env_unknown=env is UNKNOWN,
                             env_from=bool(c.get("envFrom")), command=command, init=".initContainers[" in path))
    if resource_type == SAGEMAKER_MODEL:
        specs = [("primaryContainer", get(props, "primaryContainer"))] + items(props, "containers")
        for path, c in specs:
            if not isinstance(c, dict):
                continue
            env = c.get("environment")
            out.append(Container(path=path, name=path, image=c.get("image"), image_path=f"{path}.image",
                                 env=_env_dict(f"{path}.environment", env), env_path=f"{path}.environment",
                                 env_unknown=env is UNKNOWN))
    elif resource_type == VERTEX_DEPLOYMENT:
        path = "modelConfig.containerSpec"
        c = get(props, path)
        if isinstance(c, dict):
            env = c.get("envs")
            command = [*(c.get("commands") or []), *(c.get("args") or [])] if isinstance(c.get("commands") or [], list) else []
            out.append(Container(path=path, name=path, image=c.get("imageUri"), image_path=f"{path}.imageUri",
                                 env=_env_list(f"{path}.envs", env), env_path=f"{path}.envs", env_unknown=env is UNKNOWN,
                                 command=command))
    elif resource_type == ECS_TASK:
        raw = get(props, "containerDefinitions")
        defs: Any = None
        if isinstance(raw, str):
            try:
                defs = json.loads(raw)
            except ValueError:
                defs = None
        for i, c in enumerate(defs if isinstance(defs, list) else []):
            if not isinstance(c, dict):
                continue
            path = f"containerDefinitions[{i}]"
            env = _env_list(f"{path}.environment", c.get("environment"))
            env += [EnvVar(f"{path}.secrets[{j}]", s.get("name"), None, True)
                    for j, s in enumerate(c.get("secrets") or []) if isinstance(s, dict)]
            out.append(Container(path=path, name=str(c.get("name") or path), image=c.get("image"),
                                 image_path=f"{path}.image", env=env, env_path=f"{path}.environment",
                                 env_from=bool(c.get("environmentFiles"))))
        if raw is UNKNOWN:
            out.append(Container(path="containerDefinitions", name="containerDefinitions", image=UNKNOWN,
                                 image_path="containerDefinitions", env_path="containerDefinitions", env_unknown=True))
    elif resource_type == LAMBDA:
        env = get(props, "environment.variables")
        image = get(props, "imageUri")
        out.append(Container(path="", name="function", image=image, image_path="imageUri",
                             env=_env_dict("environment.variables", env), env_path="environment.variables",
                             env_unknown=env is UNKNOWN))
    return out


def env_value(container: Container, name: str) -> tuple[Optional[EnvVar], bool]:
    """The variable `name` of a container (last one wins), and whether its absence can be trusted."""
    found = None
    for e in container.env:
        if e.name == name:
            found = e
    certain = not container.env_unknown and not container.env_from
    return found, certain
