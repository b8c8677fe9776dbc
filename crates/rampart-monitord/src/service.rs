//! The `org.rampart.Monitor1` object. Reads go straight to the engine (the bus policy admits only root and the
//! web tier); the one mutating method, `SetEnforcement`, is checked at the boundary and then goes through the guard
//! (authorize → audit → act).

use std::sync::{Arc, Mutex};

use rampart_common::guard::{Action, LazyGuard};
use rampart_interfaces::monitor::{Alert, Enforcement, Health, TenantCounters, TenantDetail};
use rampart_interfaces::Error as BusError;
use serde_json::json;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::Connection;

use crate::engine::Engine;
use crate::events::ReaderStats;
use crate::Error;

#[derive(Debug)]
pub struct MonitorService {
    engine: Arc<Mutex<Engine>>,
    reader: Arc<ReaderStats>,
    guard: LazyGuard,
}

pub fn to_bus(e: Error) -> BusError {
    match e {
        Error::Invalid(m) => BusError::InvalidArgument(m),
        other => BusError::Failed(rampart_common::error::chain(&other)),
    }
}

/// Runs `f` on the engine in a blocking thread.
pub async fn with_engine<T: Send + 'static>(
    engine: &Arc<Mutex<Engine>>,
    f: impl FnOnce(&mut Engine) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let engine = Arc::clone(engine);
    tokio::task::spawn_blocking(move || {
        let mut e = engine.lock().map_err(|_| {
            Error::Invalid(
                "the monitor is unusable after an internal error; restart rampart-monitord".into(),
            )
        })?;
        f(&mut e)
    })
    .await
    .map_err(|e| Error::Thread(std::io::Error::other(e)))?
}

impl MonitorService {
    pub fn new(
        engine: Arc<Mutex<Engine>>,
        reader: Arc<ReaderStats>,
        console_uid: Option<u32>,
    ) -> MonitorService {
        MonitorService {
            engine,
            reader,
            guard: LazyGuard::new(console_uid),
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, BusError> {
        with_engine(&self.engine, f).await.map_err(to_bus)
    }
}

#[zbus::interface(name = "org.rampart.Monitor1")]
impl MonitorService {
    async fn counters(&self) -> Result<Vec<TenantCounters>, BusError> {
        self.read(|e| e.counters()).await
    }

    async fn tenant(&self, name: String) -> Result<TenantDetail, BusError> {
        rampart_interfaces::tenant::check_name(&name).map_err(BusError::InvalidArgument)?;
        self.read(move |e| e.detail(&name)).await
    }

    async fn alerts(&self, since_id: u64, limit: u32) -> Result<Vec<Alert>, BusError> {
        self.read(move |e| e.alerts(since_id, limit)).await
    }

    async fn health(&self) -> Result<Health, BusError> {
        let reader = Arc::clone(&self.reader);
        self.read(move |e| e.health(&reader)).await
    }

    async fn prometheus(&self) -> Result<String, BusError> {
        let reader = Arc::clone(&self.reader);
        self.read(move |e| {
            Ok(crate::prometheus::render(
                &e.counters()?,
                &e.health(&reader)?,
            ))
        })
        .await
    }

    async fn enforcement(&self, name: String) -> Result<Enforcement, BusError> {
        rampart_interfaces::tenant::check_name(&name).map_err(BusError::InvalidArgument)?;
        self.read(move |e| e.enforcement(&name)).await
    }

    async fn set_enforcement(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        token: &str,
        settings: Enforcement,
    ) -> Result<(), BusError> {
        let checked = Engine::check_enforcement(&settings).map_err(to_bus)?;
        let target = format!("tenant/{}", checked.tenant);
        let action = Action {
            permission: "monitor.enforce",
            target: &target,
            details: json!({
                "deny_outbound": checked.deny_outbound,
                "restrict_listen": checked.restrict_listen,
                "allow_listen": checked.allow_listen,
            }),
        };
        let engine = Arc::clone(&self.engine);
        self.guard
            .get(conn)
            .await?
            .run(&header, token, action, |_principal| async move {
                with_engine(&engine, move |e| e.set_enforcement(&checked))
                    .await
                    .map_err(to_bus)
            })
            .await
    }

    #[zbus(signal)]
    pub async fn alert_raised(emitter: &SignalEmitter<'_>, alert: Alert) -> zbus::Result<()>;
}
