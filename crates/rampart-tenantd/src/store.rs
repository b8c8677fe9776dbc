//! The tenants database (SQLite through rampart_common::db): one row per tenant, deleted ones until their purge.
//!
//! A row carries the plan's name and the limits it had when they were last applied, so a tenant's slice can be
//! made again after a boot even if its plan was since removed from the configuration. A tenant's services are rows
//! of their own (`services`), removed with the tenant's row (`ON DELETE CASCADE`, so a version that knows nothing
//! of them still purges cleanly after a rollback).

use std::collections::HashSet;
use std::path::Path;

use rampart_interfaces::tenant::{
    slice_name, Plan, Tenant, STATE_ACTIVE, STATE_DELETED, STATE_SUSPENDED,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::Error;

/// Schema migrations; only additive (see rampart_common::db).
pub const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE tenants (
    name TEXT PRIMARY KEY,
    uid INTEGER NOT NULL UNIQUE,
    state TEXT NOT NULL,
    plan TEXT NOT NULL,
    cpu_percent INTEGER NOT NULL,
    memory_max INTEGER NOT NULL,
    io_weight INTEGER NOT NULL,
    tasks_max INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    purge_at INTEGER NOT NULL DEFAULT 0,
    changed_at INTEGER NOT NULL
);
",
    "
CREATE TABLE services (
    tenant TEXT NOT NULL REFERENCES tenants(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    argv TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
",
];

/// A tenant's life-cycle state (see rampart_interfaces::tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Suspended,
    Deleted,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Active => STATE_ACTIVE,
            State::Suspended => STATE_SUSPENDED,
            State::Deleted => STATE_DELETED,
        }
    }

    fn parse(s: &str) -> Option<State> {
        [State::Active, State::Suspended, State::Deleted]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub uid: u32,
    pub state: State,
    /// The plan's name and the limits last applied.
    pub plan: Plan,
    pub created_at: u64,
    pub created_by: String,
    pub reason: String,
    pub purge_at: u64,
}

impl Record {
    /// The wire form; `root` is the directory the tenants' chroots live in.
    pub fn to_wire(&self, root: &Path) -> Tenant {
        Tenant {
            name: self.name.clone(),
            uid: self.uid,
            state: self.state.as_str().to_owned(),
            plan: self.plan.name.clone(),
            slice: slice_name(&self.name),
            directory: root.join(&self.name).display().to_string(),
            created_at: self.created_at,
            created_by: self.created_by.clone(),
            reason: self.reason.clone(),
            purge_at: self.purge_at,
        }
    }
}

pub fn open(path: &Path) -> Result<Connection, Error> {
    Ok(rampart_common::db::open(path, MIGRATIONS)?)
}

const COLUMNS: &str =
    "name, uid, state, plan, cpu_percent, memory_max, io_weight, tasks_max, created_at, \
                       created_by, reason, purge_at";

fn record(r: &Row<'_>) -> rusqlite::Result<Record> {
    let state: String = r.get(2)?;
    let state = State::parse(&state).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Text,
            format!("unknown tenant state {state:?}").into(),
        )
    })?;
    Ok(Record {
        name: r.get(0)?,
        uid: r.get(1)?,
        state,
        plan: Plan {
            name: r.get(3)?,
            cpu_percent: r.get(4)?,
            memory_max: r.get(5)?,
            io_weight: r.get(6)?,
            tasks_max: r.get(7)?,
        },
        created_at: r.get(8)?,
        created_by: r.get(9)?,
        reason: r.get(10)?,
        purge_at: r.get(11)?,
    })
}

pub fn get(conn: &Connection, name: &str) -> Result<Option<Record>, Error> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM tenants WHERE name = ?1"),
        [name],
        record,
    )
    .optional()
    .map_err(Error::db("look up a tenant"))
}

/// Every tenant, by name.
pub fn all(conn: &Connection) -> Result<Vec<Record>, Error> {
    select(conn, "ORDER BY name", params![])
}

/// Deleted tenants whose purge time has come.
pub fn due(conn: &Connection, now: u64) -> Result<Vec<Record>, Error> {
    select(
        conn,
        "WHERE state = ?1 AND purge_at <= ?2 ORDER BY purge_at",
        params![STATE_DELETED, now],
    )
}

/// The earliest purge time of a deleted tenant.
pub fn next_purge(conn: &Connection) -> Result<Option<u64>, Error> {
    conn.query_row(
        "SELECT min(purge_at) FROM tenants WHERE state = ?1",
        [STATE_DELETED],
        |r| r.get(0),
    )
    .map_err(Error::db("find the next purge"))
}

fn select(
    conn: &Connection,
    clause: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Record>, Error> {
    let mut stmt = conn
        .prepare(&format!("SELECT {COLUMNS} FROM tenants {clause}"))
        .map_err(Error::db("list tenants"))?;
    let rows = stmt
        .query_map(args, record)
        .map_err(Error::db("list tenants"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("read a tenant"))
}

pub fn used_uids(conn: &Connection) -> Result<HashSet<u32>, Error> {
    let mut stmt = conn
        .prepare("SELECT uid FROM tenants")
        .map_err(Error::db("list uids"))?;
    let rows = stmt
        .query_map([], |r| r.get(0))
        .map_err(Error::db("list uids"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("read a uid"))
}

pub fn insert(conn: &Connection, r: &Record, now: u64) -> Result<(), Error> {
    conn.execute(
        &format!("INSERT INTO tenants ({COLUMNS}, changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
        params![
            r.name, r.uid, r.state.as_str(), r.plan.name, r.plan.cpu_percent, r.plan.memory_max, r.plan.io_weight,
            r.plan.tasks_max, r.created_at, r.created_by, r.reason, r.purge_at, now
        ],
    )
    .map_err(Error::db("store the new tenant"))?;
    Ok(())
}

/// Writes the mutable part of `r` (state, plan and limits, reason, purge time).
pub fn update(conn: &Connection, r: &Record, now: u64) -> Result<(), Error> {
    let n = conn
        .execute(
            "UPDATE tenants SET state = ?2, plan = ?3, cpu_percent = ?4, memory_max = ?5, io_weight = ?6,
             tasks_max = ?7, reason = ?8, purge_at = ?9, changed_at = ?10 WHERE name = ?1",
            params![
                r.name,
                r.state.as_str(),
                r.plan.name,
                r.plan.cpu_percent,
                r.plan.memory_max,
                r.plan.io_weight,
                r.plan.tasks_max,
                r.reason,
                r.purge_at,
                now
            ],
        )
        .map_err(Error::db("update the tenant"))?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::NotFound(r.name.clone()))
    }
}

pub fn delete(conn: &Connection, name: &str) -> Result<(), Error> {
    conn.execute("DELETE FROM tenants WHERE name = ?1", [name])
        .map_err(Error::db("remove the tenant"))?;
    Ok(())
}

/// A tenant's service, as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub tenant: String,
    pub name: String,
    /// The command line (checked: rampart_interfaces::tenant::check_argv); stored as a JSON array.
    pub argv: Vec<String>,
    pub created_at: u64,
    pub created_by: String,
}

fn service(r: &Row<'_>) -> rusqlite::Result<ServiceRecord> {
    let argv: String = r.get(2)?;
    let argv = serde_json::from_str(&argv).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(ServiceRecord {
        tenant: r.get(0)?,
        name: r.get(1)?,
        argv,
        created_at: r.get(3)?,
        created_by: r.get(4)?,
    })
}

const SERVICE_COLUMNS: &str = "tenant, name, argv, created_at, created_by";

/// The services of `tenant`, by name.
pub fn services(conn: &Connection, tenant: &str) -> Result<Vec<ServiceRecord>, Error> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {SERVICE_COLUMNS} FROM services WHERE tenant = ?1 ORDER BY name"
        ))
        .map_err(Error::db("list services"))?;
    let rows = stmt
        .query_map([tenant], service)
        .map_err(Error::db("list services"))?;
    rows.collect::<Result<_, _>>()
        .map_err(Error::db("read a service"))
}

pub fn get_service(
    conn: &Connection,
    tenant: &str,
    name: &str,
) -> Result<Option<ServiceRecord>, Error> {
    conn.query_row(
        &format!("SELECT {SERVICE_COLUMNS} FROM services WHERE tenant = ?1 AND name = ?2"),
        [tenant, name],
        service,
    )
    .optional()
    .map_err(Error::db("look up a service"))
}

pub fn insert_service(conn: &Connection, s: &ServiceRecord) -> Result<(), Error> {
    let argv = serde_json::to_string(&s.argv).map_err(|e| {
        Error::db("store the new service")(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    })?;
    conn.execute(
        &format!("INSERT INTO services ({SERVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
        params![s.tenant, s.name, argv, s.created_at, s.created_by],
    )
    .map_err(Error::db("store the new service"))?;
    Ok(())
}

pub fn delete_service(conn: &Connection, tenant: &str, name: &str) -> Result<(), Error> {
    conn.execute(
        "DELETE FROM services WHERE tenant = ?1 AND name = ?2",
        [tenant, name],
    )
    .map_err(Error::db("remove the service"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &str, uid: u32) -> Record {
        Record {
            name: name.into(),
            uid,
            state: State::Active,
            plan: Plan {
                name: "small".into(),
                cpu_percent: 50,
                memory_max: 512 << 20,
                io_weight: 100,
                tasks_max: 256,
            },
            created_at: 1,
            created_by: "root@console".into(),
            reason: String::new(),
            purge_at: 0,
        }
    }

    #[test]
    fn round_trip_update_due_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        insert(&conn, &rec("shop", 20_000), 1).unwrap();
        insert(&conn, &rec("blog", 20_001), 1).unwrap();
        assert!(
            insert(&conn, &rec("other", 20_000), 1).is_err(),
            "uids are unique"
        );
        let mut shop = get(&conn, "shop").unwrap().unwrap();
        assert_eq!(shop, rec("shop", 20_000));
        shop.state = State::Deleted;
        shop.purge_at = 100;
        shop.reason = "gone".into();
        update(&conn, &shop, 2).unwrap();
        assert_eq!(next_purge(&conn).unwrap(), Some(100));
        assert!(due(&conn, 99).unwrap().is_empty());
        assert_eq!(due(&conn, 100).unwrap(), [shop.clone()]);
        assert_eq!(used_uids(&conn).unwrap(), HashSet::from([20_000, 20_001]));
        delete(&conn, "shop").unwrap();
        assert_eq!(
            all(&conn)
                .unwrap()
                .iter()
                .map(|r| &r.name[..])
                .collect::<Vec<_>>(),
            ["blog"]
        );
        assert_eq!(next_purge(&conn).unwrap(), None);
        assert!(matches!(update(&conn, &shop, 3), Err(Error::NotFound(_))));
    }

    #[test]
    fn services_belong_to_their_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db")).unwrap();
        insert(&conn, &rec("shop", 20_000), 1).unwrap();
        insert(&conn, &rec("blog", 20_001), 1).unwrap();
        let svc = |tenant: &str, name: &str| ServiceRecord {
            tenant: tenant.into(),
            name: name.into(),
            argv: vec![
                "/usr/bin/env".into(),
                "a b".into(),
                "\"quoted\" $HOME".into(),
            ],
            created_at: 5,
            created_by: "root@console".into(),
        };
        insert_service(&conn, &svc("shop", "web")).unwrap();
        insert_service(&conn, &svc("shop", "cron")).unwrap();
        insert_service(&conn, &svc("blog", "web")).unwrap();
        assert!(
            insert_service(&conn, &svc("shop", "web")).is_err(),
            "one per name"
        );
        assert!(
            insert_service(&conn, &svc("nobody", "web")).is_err(),
            "only for a tenant"
        );
        assert_eq!(
            get_service(&conn, "shop", "web").unwrap(),
            Some(svc("shop", "web"))
        );
        assert_eq!(
            services(&conn, "shop").unwrap(),
            [svc("shop", "cron"), svc("shop", "web")]
        );
        delete_service(&conn, "shop", "cron").unwrap();
        assert_eq!(services(&conn, "shop").unwrap(), [svc("shop", "web")]);
        // A purge removes the tenant's services with it.
        delete(&conn, "shop").unwrap();
        assert!(services(&conn, "shop").unwrap().is_empty());
        assert_eq!(services(&conn, "blog").unwrap(), [svc("blog", "web")]);
    }
}
