//! Which settings go together.

use std::path::PathBuf;

use super::config::{ClientAuth, ServiceIdentity, TlsSettings, names};

fn files() -> TlsSettings {
    TlsSettings {
        cert_file: Some(PathBuf::from("tls.crt")),
        key_file: Some(PathBuf::from("tls.key")),
        ..TlsSettings::default()
    }
}

fn service(san: &str, name: &str) -> ServiceIdentity {
    ServiceIdentity {
        san: san.to_owned(),
        name: name.to_owned(),
        roles: vec!["reader".to_owned()],
    }
}

fn settings_in_error(settings: TlsSettings) -> Vec<&'static str> {
    match settings.validate() {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.into_iter().map(|e| e.setting).collect(),
    }
}

#[test]
fn nothing_configured_is_plain_text() {
    assert_eq!(TlsSettings::default().validate(), Ok(None));
}

#[test]
fn a_certificate_needs_its_key_and_the_reverse() {
    let no_key = TlsSettings {
        key_file: None,
        ..files()
    };
    assert_eq!(settings_in_error(no_key), [names::KEY_FILE]);
    let no_cert = TlsSettings {
        cert_file: None,
        ..files()
    };
    assert_eq!(settings_in_error(no_cert), [names::CERT_FILE]);
}

#[test]
fn client_settings_without_a_certificate_are_all_reported() {
    let settings = TlsSettings {
        client_ca_file: Some(PathBuf::from("ca.crt")),
        client_auth: Some(ClientAuth::Required),
        trusted_services: Some(vec!["spiffe://a/b".to_owned()]),
        services: Some(vec![service("spiffe://a/c", "c")]),
        ..TlsSettings::default()
    };
    assert_eq!(
        settings_in_error(settings),
        [
            names::CLIENT_CA_FILE,
            names::CLIENT_AUTH,
            names::TRUSTED_SERVICES,
            names::SERVICES
        ]
    );
}

#[test]
fn client_auth_defaults_to_required_with_a_client_ca() {
    let with_ca = TlsSettings {
        client_ca_file: Some(PathBuf::from("ca.crt")),
        ..files()
    };
    let config = with_ca.validate().unwrap().unwrap();
    assert_eq!(config.client_auth, ClientAuth::Required);
    let config = files().validate().unwrap().unwrap();
    assert_eq!(config.client_auth, ClientAuth::None);
}

#[test]
fn required_or_optional_client_auth_needs_a_client_ca() {
    for auth in [ClientAuth::Required, ClientAuth::Optional] {
        let settings = TlsSettings {
            client_auth: Some(auth),
            ..files()
        };
        assert_eq!(settings_in_error(settings), [names::CLIENT_AUTH]);
    }
}

#[test]
fn a_name_listed_twice_or_in_both_lists_is_refused() {
    let with_ca = || TlsSettings {
        client_ca_file: Some(PathBuf::from("ca.crt")),
        ..files()
    };
    let twice = TlsSettings {
        trusted_services: Some(vec!["spiffe://a/b".to_owned(), "spiffe://a/b".to_owned()]),
        ..with_ca()
    };
    assert_eq!(settings_in_error(twice), [names::TRUSTED_SERVICES]);
    let both = TlsSettings {
        trusted_services: Some(vec!["spiffe://a/b".to_owned()]),
        services: Some(vec![service("spiffe://a/b", "b")]),
        ..with_ca()
    };
    assert_eq!(settings_in_error(both), [names::SERVICES]);
    let service_twice = TlsSettings {
        services: Some(vec![
            service("spiffe://a/c", "c"),
            service("spiffe://a/c", "d"),
        ]),
        ..with_ca()
    };
    assert_eq!(settings_in_error(service_twice), [names::SERVICES]);
}

#[test]
fn names_need_client_certificates_to_be_read() {
    let settings = TlsSettings {
        client_auth: Some(ClientAuth::None),
        trusted_services: Some(vec!["spiffe://a/b".to_owned()]),
        ..files()
    };
    assert_eq!(settings_in_error(settings), [names::TRUSTED_SERVICES]);
}
