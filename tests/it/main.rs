//! The integration tests: black-box tests over a real server on `127.0.0.1:0` (in-process or the
//! binary as a child), real policy files, real proxies and real clients. One binary, so the suite
//! links once; each module is one area.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod policy_suite;

mod adversarial;
mod attack_identity;
mod attack_review;
mod audit_modes;
mod binary;
mod browser;
mod cli_flags;
mod cli_parity;
mod clients;
mod console;
mod corpus_policies;
mod decision_otlp;
mod deploy;
mod doc_editor;
mod engine_reference;
mod explain_parts;
mod ext_authz;
mod feeds_matrix;
mod http_authz;
mod issue_token;
mod layout;
mod mtls;
mod nginx_e2e;
mod observability;
mod oidc;
mod policy_diagnostics;
mod policy_rpcs;
mod policy_validation;
mod reload;
mod reload_consistency;
mod sdk_tokens;
mod secret_rotation;
mod service;
mod shipped_policies;
mod suite_routes;
mod telemetry_otlp;
mod tokens;
mod walkthrough;
