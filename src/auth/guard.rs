//! Applies `rules.rs` and [`decide`](super::decide) to every request: an async-graphql
//! extension checks each root query and mutation field before it resolves (a field
//! without a rule is refused), and the subscription resolvers call [`check`] before
//! they open their stream (async-graphql's resolve hook sees a subscription's items,
//! not its opening; `tests/auth.rs` runs every subscription as each kind of caller). The caller's [`Identity`] is put in the request's data by the HTTP handler and
//! in the WebSocket connection's data by its `connection_init`.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Context, ServerError, ServerResult, Value, Variables};

use super::rules::{self, Rule, Target};
use super::{Denied, Identity, decide};
use crate::app::App;
use crate::store::{Store, StoreError, is_record_id};

/// The extension: one instance per request.
pub struct Guard;

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension::default())
    }
}

#[derive(Default)]
struct GuardExtension {
    /// The request's variables: a target argument may be `$s`.
    variables: Mutex<Variables>,
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        *self.variables.lock().unwrap_or_else(|p| p.into_inner()) = variables.clone();
        next.run(ctx, query, variables).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // A subscription's items resolve here too, each under its part's type name
        // (`SessionSubscription`); their stream was checked when it opened.
        let root = info.path_node.parent.is_none()
            && matches!(info.parent_type, "QueryRoot" | "MutationRoot")
            && !info.is_for_introspection
            && !info.name.starts_with("__");
        if !root {
            return next.run(ctx, info).await;
        }
        let identity = ctx
            .data_opt::<Identity>()
            .cloned()
            .unwrap_or(Identity::Unauthenticated("no identity"));
        let Some(rule) = rules::find(info.parent_type, info.name) else {
            return Err(coded_error(
                "FORBIDDEN",
                format!("{} has no authorization rule", info.name),
            ));
        };
        // The field's arguments with the request's variables put in.
        let arguments: Vec<(String, Value)> = {
            let variables = self.variables.lock().unwrap_or_else(|p| p.into_inner());
            info.field
                .arguments
                .iter()
                .filter_map(|(name, value)| {
                    let value = value
                        .node
                        .clone()
                        .into_const_with(|name| variables.get(&name).cloned().ok_or(()))
                        .ok()?;
                    Some((name.node.to_string(), value))
                })
                .collect()
        };
        let ids: Vec<(Target, String)> = rule
            .targets
            .iter()
            .filter_map(|target| {
                match arguments.iter().find(|(name, _)| name == target.argument()) {
                    Some((_, Value::String(id))) => Some((*target, id.clone())),
                    _ => None,
                }
            })
            .collect();
        let app = ctx.data_unchecked::<Arc<App>>();
        let (field, is_mutation) = (info.name, info.parent_type == "MutationRoot");
        let result = match allowed(&app.store, &identity, rule, &ids).await {
            Ok(()) => next.run(ctx, info).await,
            Err(denied) => Err(coded_error(denied.code(), denied.to_string())),
        };
        if !is_mutation {
            return result;
        }
        // Every mutation is recorded, refused ones too; without its record it fails.
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(error) => error
                .extensions
                .as_ref()
                .and_then(|extensions| match extensions.get("code") {
                    Some(Value::String(code)) => Some(code.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "ERROR".to_owned()),
        };
        // Only ids the server made go to their columns; any other text (a NUL byte,
        // which PostgreSQL refuses in text) stays in the arguments, escaped as JSON.
        let id_of = |wanted: fn(&Target) -> bool| {
            ids.iter()
                .find(|(target, id)| wanted(target) && is_record_id(id))
                .map(|(_, id)| id.clone())
        };
        let entry = crate::audit::Entry {
            user: identity.user(),
            operation: field,
            session_id: id_of(|t| matches!(t, Target::Session(_))),
            job_id: id_of(|t| matches!(t, Target::Job(_))),
            arguments: serde_json::Value::Object(
                arguments
                    .into_iter()
                    .filter_map(|(name, value)| Some((name, value.into_json().ok()?)))
                    .collect(),
            ),
            outcome: &outcome,
        };
        if let Err(error) = app.audit.record(entry).await {
            tracing::error!(%error, operation = field, "the audit log cannot be written");
            return Err(coded_error(
                "INTERNAL",
                "the operation ran, but the audit log cannot be written; see the server log"
                    .to_owned(),
            ));
        }
        result
    }
}

fn coded_error(code: &'static str, message: String) -> ServerError {
    crate::api::coded(code, message).into_server_error(Default::default())
}

/// The caller of the request `ctx` belongs to.
pub fn identity(ctx: &Context<'_>) -> Identity {
    ctx.data_opt::<Identity>()
        .cloned()
        .unwrap_or(Identity::Unauthenticated("no identity"))
}

/// The check for a subscription resolver: `field` of `SubscriptionRoot` on `ids` (its
/// target arguments' values, in the rule's order).
pub async fn check(ctx: &Context<'_>, field: &str, ids: &[&str]) -> async_graphql::Result<()> {
    let identity = identity(ctx);
    let rule = rules::find("SubscriptionRoot", field)
        .ok_or_else(|| crate::api::coded("FORBIDDEN", format!("{field} has no rule")))?;
    let ids: Vec<(Target, String)> = rule
        .targets
        .iter()
        .zip(ids)
        .map(|(target, id)| (*target, (*id).to_owned()))
        .collect();
    let app = ctx.data_unchecked::<Arc<App>>();
    allowed(&app.store, &identity, rule, &ids)
        .await
        .map_err(|denied| crate::api::coded(denied.code(), denied.to_string()))
}

/// The check of an ID inside a mutation's input (`createJob`'s `programId` and
/// `fromSnapshot`), which the root field's rule cannot see: the caller must be allowed
/// to operate on what it names.
pub async fn check_input(ctx: &Context<'_>, target: Target, id: &str) -> async_graphql::Result<()> {
    let rule = Rule {
        field: target.argument(),
        need: super::Need::Operate,
        targets: &[],
    };
    let app = ctx.data_unchecked::<Arc<App>>();
    allowed(
        &app.store,
        &identity(ctx),
        &rule,
        &[(target, id.to_owned())],
    )
    .await
    .map_err(|denied| crate::api::coded(denied.code(), denied.to_string()))
}

/// Looks up the owner of each target that exists, then decides.
async fn allowed(
    store: &Store,
    identity: &Identity,
    rule: &Rule,
    ids: &[(Target, String)],
) -> Result<(), Denied> {
    // Nothing to look up for those who may do everything, or nothing.
    if matches!(identity, Identity::Local | Identity::Unauthenticated(_))
        || matches!(identity, Identity::Key { role, .. } if *role == super::Role::Admin)
    {
        return decide(identity, rule.need, &[]);
    }
    let mut owners: Vec<(&'static str, Option<String>)> = Vec::new();
    for (target, id) in ids {
        match owner(store, *target, id).await {
            Ok(Some(found)) => owners.push(found),
            Ok(None) => {}
            Err(error) => {
                tracing::error!(%error, "cannot read an owner");
                return Err(Denied::Unauthenticated(
                    "the owner cannot be checked now; see the server log",
                ));
            }
        }
    }
    let owners: Vec<(&'static str, Option<&str>)> = owners
        .iter()
        .map(|(kind, owner)| (*kind, owner.as_deref()))
        .collect();
    decide(identity, rule.need, &owners)
}

/// The kind and owner of `id`, or `None` when there is no such record.
async fn owner(
    store: &Store,
    target: Target,
    id: &str,
) -> Result<Option<(&'static str, Option<String>)>, StoreError> {
    if !is_record_id(id) {
        return Ok(None);
    }
    let of_session = |session_id: String| async move {
        Ok::<_, StoreError>(store.session(&session_id).await?.map(|s| s.owner))
    };
    Ok(match target {
        Target::Session(_) => store
            .session(id)
            .await?
            .map(|session| ("session", session.owner)),
        Target::Job(_) => store.job(id).await?.map(|job| ("job", job.owner)),
        Target::Snapshot(_) => match store.snapshot(id).await? {
            Some(snapshot) => of_session(snapshot.session_id)
                .await?
                .map(|owner| ("snapshot", owner)),
            None => None,
        },
        Target::Program(_) => match store.program(id).await? {
            Some(program) => of_session(program.session_id)
                .await?
                .map(|owner| ("program", owner)),
            None => None,
        },
        Target::Recording(_) => match store.recording(id).await? {
            Some(recording) => of_session(recording.session_id)
                .await?
                .map(|owner| ("recording", owner)),
            None => None,
        },
    })
}
