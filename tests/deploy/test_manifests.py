"""deploy/: Kubernetes manifests, the Dockerfile and .dockerignore, checked offline.

No cluster and no Docker engine: manifests are validated against the Kubernetes OpenAPI schemas that
kubernetes_validate ships (strict: unknown fields fail), and the Dockerfile is parsed for the facts the
deployment relies on.
"""

from __future__ import annotations

import ast
import copy
import fnmatch
import glob
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from bridge.live.metrics import BridgeMetrics
from bridge.live.server import Bridge
from bridge.live.settings import Settings, env_name

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
K8S_VERSION = "1.30.0"
UID = 10001
STATE_DIR = "/var/lib/mosbridge"
# Non-MOSBRIDGE keys a Secret may carry: libpq reads PGPASSWORD for MOSBRIDGE_DATABASE_URL.
LIBPQ_KEYS = frozenset({"PGPASSWORD"})
# From the README load test: 100-150 pcmu calls held clean per core on the reference machine.
CLEAN_CALLS_PER_CORE = 100
# terminationGracePeriodSeconds must exceed preStop sleep + drain timeout by at least this much.
SHUTDOWN_MARGIN_S = 15

Manifest = dict[str, Any]


# ----------------------------------------------------------------------------- helpers


def load_docs(path: Path) -> list[Manifest]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization() -> Manifest:
    docs = load_docs(K8S / "kustomization.yaml")
    assert len(docs) == 1
    return docs[0]


def resources() -> list[Manifest]:
    return [doc for name in kustomization()["resources"] for doc in load_docs(K8S / name)]


def one(kind: str) -> Manifest:
    found = [d for d in resources() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind} in the kustomization, found {len(found)}"
    return found[0]


def container() -> Manifest:
    containers = one("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    c: Manifest = containers[0]
    return c


def setting_env_names() -> set[str]:
    return {env_name(field) for field in Settings.model_fields}


def prestop_sleep_s(hook: Manifest) -> float:
    """Seconds a preStop hook sleeps: the native sleep action, `sleep N`, or python's time.sleep(N)."""
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = " ".join(hook["exec"]["command"])
    m = re.search(r"time\.sleep\(\s*([\d.]+)\s*\)", command) or re.search(r"\bsleep\s+([\d.]+)", command)
    assert m, f"cannot read a sleep from preStop command {command!r}"
    return float(m.group(1))


def exported_metric_names() -> set[str]:
    metrics = BridgeMetrics()
    return {family.name for family in text_string_to_metric_families(metrics.exposition().decode())}


# ----------------------------------------------------------------------------- schemas


def test_kustomization_lists_existing_files_and_not_the_example_secret() -> None:
    names = kustomization()["resources"]
    assert names, "kustomization lists no resources"
    for name in names:
        assert (K8S / name).is_file(), name
    assert "secret.example.yaml" not in names, "an apply would overwrite the real Secret with placeholders"
    assert not any(n.startswith("prometheus-adapter") for n in names), "Helm values are not a manifest"
    assert {d["kind"] for d in resources()} >= {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget",
                                                "HorizontalPodAutoscaler"}


@pytest.mark.parametrize("path", sorted({*kustomization()["resources"], "secret.example.yaml"}))
def test_manifest_validates_strictly(path: str) -> None:
    docs = load_docs(K8S / path)
    assert docs
    for doc in docs:
        # Raises ValidationError on a schema error and SchemaNotFoundError on an unknown kind/apiVersion.
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == "1.30"


def test_strict_validation_rejects_an_unknown_field() -> None:
    bad = copy.deepcopy(one("Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_manifests_are_namespace_agnostic() -> None:
    for doc in resources():
        assert "namespace" not in doc["metadata"], f"{doc['kind']} pins a namespace"
    assert "namespace" not in kustomization()


# ----------------------------------------------------------------------------- settings


def configmap_data() -> dict[str, str]:
    data: dict[str, str] = one("ConfigMap")["data"]
    return data


def secret_example() -> Manifest:
    docs = load_docs(K8S / "secret.example.yaml")
    assert len(docs) == 1 and docs[0]["kind"] == "Secret"
    return docs[0]


def test_configmap_keys_are_real_settings() -> None:
    unknown = set(configmap_data()) - setting_env_names()
    assert not unknown, f"ConfigMap keys that no setting reads: {sorted(unknown)}"


def test_secret_example_keys_are_real_settings() -> None:
    keys = set(secret_example()["stringData"])
    unknown = keys - setting_env_names() - LIBPQ_KEYS
    assert not unknown, f"Secret keys that no setting reads: {sorted(unknown)}"
    assert {"TWILIO_AUTH_TOKEN", "OPENAI_API_KEY", "MOSBRIDGE_PSEUDONYM_KEY", "MOSBRIDGE_ADMIN_TOKEN"} <= keys
    assert not keys & set(configmap_data()), "a key in both sources: the Secret silently wins"


def test_secret_fields_are_not_in_the_configmap() -> None:
    secret_fields = {env_name(f) for f, info in Settings.model_fields.items() if "SecretStr" in repr(info.annotation)}
    assert secret_fields, "Settings has no SecretStr fields?"
    assert not secret_fields & set(configmap_data())


def test_configmap_values_parse_as_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MOSBRIDGE_"):
            monkeypatch.delenv(name)
    for key, value in configmap_data().items():
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url.startswith("postgresql://")
    assert settings.alerts is False
    assert settings.port == container()["ports"][0]["containerPort"] == 8080
    assert settings.spool_path is not None and settings.spool_path.startswith(STATE_DIR + "/")
    assert settings.capture_dir.startswith(STATE_DIR + "/")
    assert settings.public_url is not None and settings.public_url.startswith("https://")


def test_deployment_reads_the_configmap_and_secret() -> None:
    env_from = container()["envFrom"]
    assert env_from[0]["configMapRef"]["name"] == one("ConfigMap")["metadata"]["name"]
    assert env_from[-1]["secretRef"]["name"] == secret_example()["metadata"]["name"]
    # Service links would inject MOSBRIDGE_PORT=tcp://... for the Service named "mosbridge".
    service_prefix = one("Service")["metadata"]["name"].upper().replace("-", "_") + "_"
    if any(name.startswith(service_prefix) for name in setting_env_names()):
        assert one("Deployment")["spec"]["template"]["spec"]["enableServiceLinks"] is False


# ----------------------------------------------------------------------------- pod lifecycle


def test_grace_period_covers_prestop_and_drain() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    sleep_s = prestop_sleep_s(container()["lifecycle"]["preStop"])
    drain_s = float(configmap_data()["MOSBRIDGE_DRAIN_TIMEOUT_S"])
    assert sleep_s >= 5, "preStop must give load balancers time to drop the pod"
    assert pod["terminationGracePeriodSeconds"] >= sleep_s + drain_s + SHUTDOWN_MARGIN_S


def test_prestop_sleep_parser() -> None:
    assert prestop_sleep_s({"sleep": {"seconds": 7}}) == 7
    assert prestop_sleep_s({"exec": {"command": ["python", "-c", "import time; time.sleep(12.5)"]}}) == 12.5
    assert prestop_sleep_s({"exec": {"command": ["/bin/sh", "-c", "sleep 9"]}}) == 9


def probe_paths() -> dict[str, str]:
    c = container()
    port_names = {p["name"] for p in c["ports"]}
    paths = {}
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[kind]["httpGet"]
        assert get["port"] in port_names | {p["containerPort"] for p in c["ports"]}
        paths[kind] = get["path"]
    return paths


def test_probes_use_readyz_for_readiness_and_healthz_for_liveness() -> None:
    paths = probe_paths()
    assert paths["readinessProbe"] == "/readyz"
    assert paths["livenessProbe"] == "/healthz"
    assert paths["startupProbe"] == "/healthz"


async def test_probe_paths_answer_as_the_deployment_expects(tmp_path: Path) -> None:
    """Readiness fails while draining (no new calls); liveness does not (no restart mid-drain)."""
    # the Deployment's Secret provides the AI key; no AI need answer for the pod to be ready
    settings = Settings(validate_twilio_signature=False, database_url=f"sqlite:///{tmp_path / 'reports.db'}",
                        capture_dir=str(tmp_path / "captures"), alerts=False, openai_api_key="sk-test",
                        openai_url="ws://127.0.0.1:9/v1/realtime")
    bridge = Bridge(settings, None)
    paths = probe_paths()
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    try:
        async with TestClient(TestServer(bridge.app)) as client:
            for path in {*paths.values(), annotations["prometheus.io/path"]}:
                assert (await client.get(path)).status == 200, path
            bridge.draining = True
            assert (await client.get(paths["readinessProbe"])).status == 503
            assert (await client.get(paths["livenessProbe"])).status == 200
    finally:
        bridge.recorder.close(5.0)


def test_prometheus_annotations_point_at_the_http_port() -> None:
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == container()["ports"][0]["containerPort"]


def test_pod_runs_non_root_read_only_without_privileges() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    sc = container()["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == sc["runAsUser"] == UID
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]


def test_writable_paths_are_volumes() -> None:
    """With a read-only root filesystem, the state directory, the spool's directory and /tmp are mounted."""
    mounts = {m["mountPath"] for m in container()["volumeMounts"]}
    spool_dir = str(Path(configmap_data()["MOSBRIDGE_SPOOL_PATH"]).parent)
    assert {STATE_DIR, spool_dir, "/tmp"} <= mounts
    volumes = {v["name"]: v for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]}
    for m in container()["volumeMounts"]:
        assert "emptyDir" in volumes[m["name"]], m["name"]


def test_pods_spread_across_nodes() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in pod.get("topologySpreadConstraints", [])}
    anti = pod.get("affinity", {}).get("podAntiAffinity")
    assert "kubernetes.io/hostname" in keys or anti


def test_one_core_requested() -> None:
    requests = container()["resources"]["requests"]
    assert requests["cpu"] in ("1", 1, "1000m")
    assert "memory" in container()["resources"]["limits"]


def test_deployment_env_keys_are_real_settings() -> None:
    unknown = {e["name"] for e in container().get("env", [])} - setting_env_names()
    assert not unknown, f"Deployment env that no setting reads: {sorted(unknown)}"


def test_one_worker_process_per_requested_core() -> None:
    """MOSBRIDGE_WORKERS is set explicitly (its default, the CPUs the container may use, is the whole
    node without a CPU limit) and matches the CPU request."""
    env = {e["name"]: e["value"] for e in container()["env"]}
    workers = int(env["MOSBRIDGE_WORKERS"])
    cpu = str(container()["resources"]["requests"]["cpu"])
    assert workers == (int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu))


# ----------------------------------------------------------------------------- scaling


def test_hpa_scales_the_deployment_on_an_exported_metric() -> None:
    hpa = one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": one("Deployment")["metadata"]["name"]}
    pods = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert len(pods) == 1
    assert pods[0]["metric"]["name"] == "mosbridge_calls_live"
    assert pods[0]["metric"]["name"] in exported_metric_names()
    assert any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in hpa["spec"]["metrics"])


def test_hpa_target_stays_below_clean_capacity() -> None:
    hpa = one("HorizontalPodAutoscaler")
    target = next(m["pods"]["target"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    assert target["type"] == "AverageValue"
    assert 0 < float(target["averageValue"]) < CLEAN_CALLS_PER_CORE


def test_hpa_scales_down_slowly_and_owns_the_replica_count() -> None:
    spec = one("HorizontalPodAutoscaler")["spec"]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 600
    assert spec["minReplicas"] >= 3
    # A replicas field would make every `kubectl apply` reset the scaled-out Deployment, killing live calls.
    assert "replicas" not in one("Deployment")["spec"]


def test_pdb_selects_the_deployment_pods() -> None:
    pdb = one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one("Service")["spec"]["selector"].items() <= labels.items()


def test_prometheus_adapter_rule_serves_the_hpa_metric() -> None:
    values = load_docs(K8S / "prometheus-adapter" / "rules.yaml")[0]
    rules = values["rules"]["custom"]
    hpa = one("HorizontalPodAutoscaler")
    wanted = next(m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods")
    matching = [r for r in rules if r["name"]["as"] == wanted]
    assert len(matching) == 1
    rule = matching[0]
    assert rule["seriesQuery"].startswith(wanted + "{")
    assert re.search(rule["name"]["matches"], wanted)
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_image_name_matches_kustomize_images() -> None:
    names = {i["name"] for i in kustomization()["images"]}
    assert container()["image"].split(":")[0] in names


# ----------------------------------------------------------------------------- Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and line continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        instruction, _, args = full.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, "Dockerfile ends in a line continuation"
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(ins) if name == "FROM")
    return ins[last_from:]


def args_of(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for ins, args in stage if ins == name]


def global_args() -> dict[str, str]:
    """The ARGs before the first FROM (the only ones a FROM line may use), with their defaults."""
    out: dict[str, str] = {}
    for name, args in dockerfile_instructions():
        if name == "FROM":
            break
        key, _, default = args.partition("=")
        out[key.strip()] = default.strip()
    return out


def base_images() -> list[str]:
    """Each FROM's image, with ${ARG} references replaced by the global ARG defaults."""
    defaults = global_args()
    images = []
    for f in args_of(dockerfile_instructions(), "FROM"):
        image = f.split()[0]
        for key, value in defaults.items():
            image = image.replace("${" + key + "}", value).replace("$" + key, value)
        images.append(image)
    return images


def test_dockerfile_parser() -> None:
    ins = dockerfile_instructions()
    first = next(name for name, _ in ins if name != "ARG")
    assert first == "FROM"
    assert all(name.isalpha() and name.isupper() for name, _ in ins)


def test_dockerfile_is_multi_stage_on_slim_bookworm() -> None:
    """By default both stages start from python:3.11-slim-bookworm; BASE_IMAGE (deploy/build-offline.sh)
    swaps in a local equivalent for both at once."""
    froms = args_of(dockerfile_instructions(), "FROM")
    assert len(froms) >= 2
    assert global_args().get("BASE_IMAGE") == "python:3.11-slim-bookworm"
    assert all(image == "python:3.11-slim-bookworm" for image in base_images())
    assert any(" wheel " in f" {r} " for r in args_of(dockerfile_instructions(), "RUN"))


def test_dockerfile_installs_libopus_without_recommends_and_cleans_apt() -> None:
    runs = [r for r in args_of(final_stage(), "RUN") if "apt-get install" in r]
    assert len(runs) == 1
    words = shlex.split(runs[0])
    assert "libopus0" in words and "--no-install-recommends" in words
    assert "rm -rf /var/lib/apt/lists/*" in runs[0]


def test_dockerfile_runs_as_the_pod_uid() -> None:
    users = args_of(final_stage(), "USER")
    assert users, "no USER in the final stage: the container runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == str(UID) == str(container()["securityContext"]["runAsUser"])


def test_dockerfile_workdir_is_the_state_volume() -> None:
    assert args_of(final_stage(), "WORKDIR")[-1] == STATE_DIR
    assert any(f"-o {UID} -g {UID}" in r and STATE_DIR in r for r in args_of(final_stage(), "RUN"))


def test_dockerfile_runtime_facts() -> None:
    stage = final_stage()
    assert args_of(stage, "EXPOSE") == ["8080"]
    assert args_of(stage, "STOPSIGNAL") == ["SIGTERM"]
    assert ast.literal_eval(args_of(stage, "ENTRYPOINT")[-1]) == ["mosbridge"]
    assert ast.literal_eval(args_of(stage, "CMD")[-1]) == ["serve"]
    env = " ".join(args_of(stage, "ENV"))
    assert "MOSBRIDGE_HOST=0.0.0.0" in env and "PYTHONUNBUFFERED=1" in env


def test_dockerfile_healthcheck_gets_healthz_with_python() -> None:
    checks = args_of(final_stage(), "HEALTHCHECK")
    assert len(checks) == 1
    exec_form = ast.literal_eval(checks[0].split(" CMD ", 1)[1].strip())
    assert exec_form[:2] == ["python", "-c"]
    assert "/healthz" in exec_form[2] and "urllib" in exec_form[2]
    compile(exec_form[2], "<healthcheck>", "exec")  # valid python


# ----------------------------------------------------------------------------- build context


def dockerignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _matches(path: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    if pattern.startswith("**/"):
        pattern = pattern[3:]
        candidates = ["/".join(parts[i:j]) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)]
        return any(fnmatch.fnmatchcase(c, pattern) for c in candidates)
    return any(fnmatch.fnmatchcase(p, pattern) and p.count("/") == pattern.count("/") for p in prefixes)


def ignored(path: str) -> bool:
    """Docker's rule, simplified: the last matching pattern wins; `!` re-includes."""
    result = False
    for pattern in dockerignore_patterns():
        negate = pattern.startswith("!")
        if _matches(path, pattern.lstrip("!")):
            result = not negate
    return result


def copy_sources() -> Iterator[str]:
    for args in args_of(dockerfile_instructions(), "COPY"):
        if args.startswith("--from"):
            continue
        yield from shlex.split(args)[:-1]


def test_copied_sources_exist_and_reach_the_build_context() -> None:
    sources = list(copy_sources())
    assert "pyproject.toml" in sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not ignored(src.rstrip("/")), f"{src} is COPYed but .dockerignore excludes it"
    for package in ("bridge", "quality"):
        for f in (ROOT / package).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                assert not ignored(f.relative_to(ROOT).as_posix()), f


def test_dockerignore_keeps_local_state_out() -> None:
    for path in (".git/HEAD", ".venv/bin/python", ".venv313/bin/python", "mosbridge.db", "captures/CA1.jsonl",
                 "tests/data/bursty_loss_jitter.jsonl", "bridge/__pycache__/call.cpython-311.pyc", ".env",
                 "benchmarks/bench_load.py", "mosbridge.db.spill.jsonl"):
        assert ignored(path), path
    assert not ignored("pyproject.toml")
    assert not ignored("bridge/codecs/opus.py")


def setuptools_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config


def package_of(path: Path) -> Path:
    """The innermost package directory (one with __init__.py) holding ``path``."""
    return next(p for p in path.parents if (p / "__init__.py").is_file())


def dotted(package_dir: Path) -> str:
    return package_dir.relative_to(ROOT).as_posix().replace("/", ".")


def test_wheel_includes_every_package() -> None:
    """The image installs a wheel, not the source tree: every package under bridge/ and quality/ must be in it."""
    packages = setuptools_config()["packages"]
    on_disk = {dotted(init.parent) for top in ("bridge", "quality") for init in (ROOT / top).rglob("__init__.py")}
    if isinstance(packages, list):
        missing = on_disk - set(packages)
    else:  # [tool.setuptools.packages.find]
        find = packages["find"]
        missing = {p for p in on_disk
                   if not any(fnmatch.fnmatchcase(p, pat) for pat in find.get("include", ["*"]))
                   or any(fnmatch.fnmatchcase(p, pat) for pat in find.get("exclude", []))}
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {sorted(missing)}: the wheel omits them"


def test_wheel_includes_every_data_file() -> None:
    """Non-Python files the code reads at run time (bridge/ops/web/ for /dashboard) need [tool.setuptools.package-data].

    The globs are evaluated as setuptools' build_py does: glob(pattern, recursive=True) in the package directory.
    """
    package_data: dict[str, list[str]] = setuptools_config().get("package-data", {})
    missing = []
    for top in ("bridge", "quality"):
        for f in sorted((ROOT / top).rglob("*")):
            if not f.is_file() or f.suffix in (".py", ".pyc") or "__pycache__" in f.parts:
                continue
            pkg = package_of(f)
            patterns = package_data.get(dotted(pkg), []) + package_data.get("*", [])
            covered = {m for pat in patterns for m in glob.glob(pat, root_dir=pkg, recursive=True)}
            if f.relative_to(pkg).as_posix() not in covered:
                missing.append(f.relative_to(ROOT).as_posix())
    assert not missing, f"the wheel (and so the image) would omit {missing}: add [tool.setuptools.package-data]"
