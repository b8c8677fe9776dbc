//! The route table: every path and method the panel answers, who may call it, and when. It is data, so the test
//! that calls every route × method without a session walks this same table (`tests/routes.rs`).

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the stylesheet, the API description, the login and setup-code forms.
    Public,
    /// Between the password and the second factor (the login challenge cookie).
    Challenge,
    /// A live web-wizard setup token.
    Setup,
    /// Any live session, whatever its role.
    Session,
    /// A live session whose role holds this permission (identityd decides).
    Permission(&'static str),
}

/// When a route exists: before setup is complete, after, or always.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Always,
    BeforeSetup,
    AfterSetup,
}

/// The handlers, by name (dispatched in [`crate::app`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum H {
    Index,
    Css,
    OpenApi,
    SetupCodeForm,
    SetupCode,
    SetupAdminForm,
    SetupAdmin,
    SetupTotp,
    SetupSshForm,
    SetupSsh,
    SetupConfirmForm,
    SetupConfirm,
    LoginForm,
    Login,
    SecondFactor,
    Logout,
    Dashboard,
    Accounts,
    AccountCreate,
    AccountDisable,
    AccountEnable,
    AccountReset2fa,
    AccountExpiry,
    PasswordForm,
    Password,
    ApiSetupState,
    ApiSetupBegin,
    ApiSetupAdmin,
    ApiSetupSecondFactor,
    ApiSetupSsh,
    ApiSetupFinish,
    ApiLogin,
    ApiSecondFactor,
    ApiLogout,
    ApiSession,
    ApiHealth,
    ApiAudit,
    ApiFirewallRules,
    ApiSshKeys,
    ApiAccounts,
    ApiAccountCreate,
    ApiAccountDisable,
    ApiAccountEnable,
    ApiAccountReset2fa,
    ApiAccountExpiry,
}

#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    /// `{}` matches one path segment, passed to the handler in order.
    pub path: &'static str,
    pub access: Access,
    pub phase: Phase,
    /// Counts against the per-source authentication rate limit (passwords, codes).
    pub auth_attempt: bool,
    pub handler: H,
}

const fn r(
    method: &'static str,
    path: &'static str,
    access: Access,
    phase: Phase,
    handler: H,
) -> Route {
    Route {
        method,
        path,
        access,
        phase,
        auth_attempt: false,
        handler,
    }
}

/// A route whose requests carry a password or a code.
const fn attempt(
    method: &'static str,
    path: &'static str,
    access: Access,
    phase: Phase,
    handler: H,
) -> Route {
    Route {
        method,
        path,
        access,
        phase,
        auth_attempt: true,
        handler,
    }
}

use Access::{Challenge, Permission as P, Public, Session, Setup};
use Phase::{AfterSetup as After, Always, BeforeSetup as Before};

pub const ROUTES: &[Route] = &[
    r("GET", "/", Public, Always, H::Index),
    r("GET", "/static/style.css", Public, Always, H::Css),
    r("GET", "/openapi.json", Public, Always, H::OpenApi),
    // The web wizard.
    r("GET", "/setup", Public, Before, H::SetupCodeForm),
    attempt("POST", "/setup", Public, Before, H::SetupCode),
    r("GET", "/setup/admin", Setup, Before, H::SetupAdminForm),
    r("POST", "/setup/admin", Setup, Before, H::SetupAdmin),
    attempt("POST", "/setup/totp", Setup, Before, H::SetupTotp),
    r("GET", "/setup/ssh", Setup, Before, H::SetupSshForm),
    r("POST", "/setup/ssh", Setup, Before, H::SetupSsh),
    r("GET", "/setup/confirm", Setup, Before, H::SetupConfirmForm),
    r("POST", "/setup/confirm", Setup, Before, H::SetupConfirm),
    // Logging in and out.
    r("GET", "/login", Public, After, H::LoginForm),
    attempt("POST", "/login", Public, After, H::Login),
    attempt("POST", "/login/2fa", Challenge, After, H::SecondFactor),
    r("POST", "/logout", Session, After, H::Logout),
    // The panel.
    r("GET", "/dashboard", Session, After, H::Dashboard),
    r("GET", "/accounts", P("identity.read"), After, H::Accounts),
    r(
        "POST",
        "/accounts",
        P("identity.account-create"),
        After,
        H::AccountCreate,
    ),
    r(
        "POST",
        "/accounts/disable",
        P("identity.account-disable"),
        After,
        H::AccountDisable,
    ),
    r(
        "POST",
        "/accounts/enable",
        P("identity.account-disable"),
        After,
        H::AccountEnable,
    ),
    r(
        "POST",
        "/accounts/reset-2fa",
        P("identity.2fa-reset"),
        After,
        H::AccountReset2fa,
    ),
    r(
        "POST",
        "/accounts/expiry",
        P("identity.account-expiry"),
        After,
        H::AccountExpiry,
    ),
    r(
        "GET",
        "/password",
        P("identity.password"),
        After,
        H::PasswordForm,
    ),
    attempt(
        "POST",
        "/password",
        P("identity.password"),
        After,
        H::Password,
    ),
    // The JSON API (openapi.json describes it).
    r("GET", "/api/v1/setup", Public, Always, H::ApiSetupState),
    attempt(
        "POST",
        "/api/v1/setup/begin",
        Public,
        Before,
        H::ApiSetupBegin,
    ),
    r(
        "POST",
        "/api/v1/setup/admin",
        Setup,
        Before,
        H::ApiSetupAdmin,
    ),
    attempt(
        "POST",
        "/api/v1/setup/second-factor",
        Setup,
        Before,
        H::ApiSetupSecondFactor,
    ),
    r("POST", "/api/v1/setup/ssh", Setup, Before, H::ApiSetupSsh),
    r(
        "POST",
        "/api/v1/setup/finish",
        Setup,
        Before,
        H::ApiSetupFinish,
    ),
    attempt("POST", "/api/v1/login", Public, After, H::ApiLogin),
    attempt(
        "POST",
        "/api/v1/login/second-factor",
        Public,
        After,
        H::ApiSecondFactor,
    ),
    r("POST", "/api/v1/logout", Session, After, H::ApiLogout),
    r("GET", "/api/v1/session", Session, After, H::ApiSession),
    r("GET", "/api/v1/health", Session, After, H::ApiHealth),
    r("GET", "/api/v1/audit", P("audit.read"), After, H::ApiAudit),
    r(
        "GET",
        "/api/v1/firewall/rules",
        P("firewall.read"),
        After,
        H::ApiFirewallRules,
    ),
    r(
        "GET",
        "/api/v1/ssh/keys",
        P("ssh.read"),
        After,
        H::ApiSshKeys,
    ),
    r(
        "GET",
        "/api/v1/accounts",
        P("identity.read"),
        After,
        H::ApiAccounts,
    ),
    r(
        "POST",
        "/api/v1/accounts",
        P("identity.account-create"),
        After,
        H::ApiAccountCreate,
    ),
    r(
        "POST",
        "/api/v1/accounts/{}/disable",
        P("identity.account-disable"),
        After,
        H::ApiAccountDisable,
    ),
    r(
        "POST",
        "/api/v1/accounts/{}/enable",
        P("identity.account-disable"),
        After,
        H::ApiAccountEnable,
    ),
    r(
        "POST",
        "/api/v1/accounts/{}/reset-2fa",
        P("identity.2fa-reset"),
        After,
        H::ApiAccountReset2fa,
    ),
    r(
        "POST",
        "/api/v1/accounts/{}/expiry",
        P("identity.account-expiry"),
        After,
        H::ApiAccountExpiry,
    ),
];

/// The outcome of looking a request up.
#[derive(Debug)]
pub enum Found {
    Route(&'static Route, Vec<String>),
    /// The path exists with other methods (405, with `Allow`).
    OtherMethods(Vec<&'static str>),
    NotFound,
}

fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let (mut p, mut s) = (pattern.split('/'), path.split('/'));
    let mut params = Vec::new();
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(params),
            (Some("{}"), Some(seg)) if !seg.is_empty() && seg.len() <= 64 => {
                params.push(seg.to_owned())
            }
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
    }
}

pub fn find(method: &str, path: &str) -> Found {
    let mut others = Vec::new();
    for route in ROUTES {
        if let Some(params) = matches(route.path, path) {
            // HEAD is answered like GET, without a body.
            if route.method == method || (method == "HEAD" && route.method == "GET") {
                return Found::Route(route, params);
            }
            others.push(route.method);
        }
    }
    if others.is_empty() {
        Found::NotFound
    } else {
        Found::OtherMethods(others)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_with_params_methods_and_no_prefix_tricks() {
        match find("POST", "/api/v1/accounts/alice/disable") {
            Found::Route(r, p) => assert_eq!(
                (r.handler, p),
                (H::ApiAccountDisable, vec!["alice".to_owned()])
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(find("HEAD", "/login"), Found::Route(r, _) if r.handler == H::LoginForm));
        assert!(
            matches!(find("DELETE", "/login"), Found::OtherMethods(m) if m == vec!["GET", "POST"])
        );
        for nope in [
            "/login/",
            "/loginx",
            "/api/v1/accounts//disable",
            "/static/../static/style.css",
            "",
        ] {
            assert!(
                matches!(find("GET", nope), Found::NotFound | Found::OtherMethods(_)),
                "{nope}"
            );
        }
    }

    #[test]
    fn every_route_is_unique_and_permissions_are_catalogued() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
            if let Access::Permission(p) = a.access {
                assert!(
                    rampart_interfaces::identity::PERMISSIONS
                        .iter()
                        .any(|(n, _)| *n == p),
                    "{} {}: {p} is not a catalogued permission",
                    a.method,
                    a.path
                );
            }
        }
    }
}
