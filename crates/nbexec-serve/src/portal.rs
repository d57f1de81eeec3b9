//! Portal-lite (`--portal`, spec serve.md §7): the few `/portal/…` routes the ArcGIS
//! Python API (`arcgis` 2.4.4) walks before it reaches a Notebook Server, answered from
//! this server's own users, items and URL. With them the unmodified client runs
//! `GIS(url + "/portal", user, pw, verify_cert=False, use_gen_token=True)
//! .notebook_server[0].notebooks.execute_notebook(item, …)`.
//!
//! What it is not: a portal. There are no groups, no sharing, no search, no content
//! writes. Every route answers JSON (`f=pjson` pretty), since the client always sends
//! `f=json`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::{ApiError, Req};
use crate::auth::{self, Principal};
use crate::routes::get_or_post;

/// The portal's id (what `portals/self` names and `portals/<id>/servers` takes).
pub const PORTAL_ID: &str = "nbexec0000000000";
/// The portal version the client is told; recent enough for `arcgis` 2.4.
pub const PORTAL_VERSION: &str = "2025.1";

/// The routes, to merge into the server's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/portal/info", get_or_post(empty))
        .route("/portal/rest/info", get_or_post(empty))
        .route("/portal/rest/services", get_or_post(empty))
        .route("/portal/sharing/rest", get_or_post(version))
        .route("/portal/sharing/rest/", get_or_post(version))
        .route("/portal/sharing/rest/info", get_or_post(info))
        .route(
            "/portal/sharing/rest/generateToken",
            get_or_post(auth::generate_token),
        )
        .route(
            "/portal/sharing/rest/portals/self",
            get_or_post(portal_self),
        )
        .route(
            "/portal/sharing/rest/community/self",
            get_or_post(community_self),
        )
        .route(
            "/portal/sharing/rest/community/users/{user}",
            get_or_post(community_user),
        )
        .route(
            "/portal/sharing/rest/portals/{id}/servers",
            get_or_post(servers),
        )
        .route(
            "/portal/sharing/rest/content/items/{id}",
            get_or_post(content_item),
        )
}

/// JSON, pretty for `f=pjson`; errors in the `{"error":…}` shape.
fn reply(req: &Req, result: Result<Value, ApiError>) -> Response {
    let pretty = req
        .text("f")
        .is_some_and(|f| f.trim().eq_ignore_ascii_case("pjson"));
    let (status, value) = match result {
        Ok(v) => (StatusCode::OK, v),
        Err(e) => (e.status, e.body),
    };
    crate::api::json_body(status, &value, pretty)
}

fn portal_url(st: &AppState, req: &Req) -> String {
    format!("{}/portal", st.origin(req))
}

async fn empty(req: Req) -> Response {
    reply(&req, Ok(json!({})))
}

async fn version(req: Req) -> Response {
    reply(&req, Ok(json!({"currentVersion": PORTAL_VERSION})))
}

async fn info(State(st): State<AppState>, req: Req) -> Response {
    let portal = portal_url(&st, &req);
    reply(
        &req,
        Ok(json!({
            "owningSystemUrl": portal,
            "authInfo": {
                "tokenServicesUrl": format!("{portal}/sharing/rest/generateToken"),
                "isTokenBasedSecurity": true,
            },
        })),
    )
}

/// The user record the client reads (`username` is required).
fn user_json(name: &str, admin: bool) -> Value {
    let (role, privileges) = if admin {
        (
            "org_admin",
            json!([
                "portal:admin:viewUsers",
                "portal:admin:viewItems",
                "portal:user:createItem",
                "premium:user:advancednotebooks",
                "premium:user:basicnotebooks",
                "features:user:edit"
            ]),
        )
    } else {
        (
            "org_user",
            json!([
                "portal:user:createItem",
                "premium:user:advancednotebooks",
                "premium:user:basicnotebooks",
                "features:user:edit"
            ]),
        )
    };
    json!({
        "username": name,
        "fullName": name,
        "role": role,
        "userLicenseTypeId": "creatorUT",
        "privileges": privileges,
        "orgId": PORTAL_ID,
        "level": "2",
        "disabled": false,
        "provider": "arcgis",
    })
}

/// The principal's user name. An open server (no `--users`) has no users: its caller
/// goes by the name its token was issued to, else `admin`.
fn display_name(st: &AppState, req: &Req, who: &Principal) -> String {
    match who {
        Principal::Anonymous => auth::request_token(req)
            .and_then(|t| st.auth.token_name(&t))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "admin".to_owned()),
        Principal::User { name, .. } => name.clone(),
    }
}

async fn portal_self(State(st): State<AppState>, req: Req) -> Response {
    let mut v = json!({
        "id": PORTAL_ID,
        "name": "nbexec",
        "portalName": "nbexec Notebook Server",
        "portalMode": "singletenant",
        "isPortal": true,
        "currentVersion": PORTAL_VERSION,
        "supportsOAuth": false,
        "allSSL": st.scheme == "https",
        "httpsPort": st.local_addr.port(),
        "httpPort": st.local_addr.port(),
        "portalHostname": req.host().unwrap_or_else(|| st.local_addr.to_string()),
        "urlKey": "",
        "helperServices": {},
        "authorizedCrossOriginDomains": [],
    });
    if let Some(who) = auth::optional_principal(&st, &req)
        && (st.auth.enabled() || auth::request_token(&req).is_some())
    {
        v["user"] = user_json(&display_name(&st, &req, &who), who.is_admin());
    }
    reply(&req, Ok(v))
}

async fn community_self(State(st): State<AppState>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        Ok(user_json(&display_name(&st, &req, &who), who.is_admin()))
    }
    .await;
    reply(&req, r)
}

async fn community_user(
    State(st): State<AppState>,
    Path(user): Path<String>,
    req: Req,
) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        match &who {
            // The open server's caller may take any name.
            Principal::Anonymous => Ok(user_json(&user, true)),
            Principal::User { name, .. } if *name == user => Ok(user_json(name, who.is_admin())),
            Principal::User { .. } if who.is_admin() && st.auth.has_user(&user) => {
                Ok(user_json(&user, st.auth.is_admin_user(&user)))
            }
            Principal::User { .. } => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                400,
                &format!(
                    "User '{}' does not exist or is inaccessible.",
                    crate::short(&user)
                ),
                Vec::new(),
            )),
        }
    }
    .await;
    reply(&req, r)
}

/// The federated servers: this one, as a Notebook Server. The client appends `/admin`
/// to `adminUrl`.
async fn servers(State(st): State<AppState>, Path(_id): Path<String>, req: Req) -> Response {
    let r = async {
        auth::principal(&st, &req).await?;
        let url = format!("{}{}", st.origin(&req), st.config.base_path);
        Ok(json!({"servers": [{
            "id": "nbexec",
            "name": req.host().unwrap_or_else(|| st.local_addr.to_string()),
            "adminUrl": url,
            "url": url,
            "isHosted": false,
            "serverType": "ArcGIS",
            "serverRole": "FEDERATED_SERVER",
            "serverFunction": "NotebookServer",
        }]}))
    }
    .await;
    reply(&req, r)
}

/// An item of the item store, as `gis.content.get(id)` wants it. Another user's item
/// is "inaccessible", as a portal says.
async fn content_item(State(st): State<AppState>, Path(id): Path<String>, req: Req) -> Response {
    let r = async {
        let who = auth::principal(&st, &req).await?;
        let inaccessible = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                400,
                "Item does not exist or is inaccessible.",
                Vec::new(),
            )
        };
        let item = st.items.get(&id).map_err(|_| inaccessible())?;
        if !who.may_run(&item) {
            return Err(inaccessible());
        }
        let owner = if item.owner.is_empty() {
            display_name(&st, &req, &who)
        } else {
            item.owner.clone()
        };
        let mut v = item.to_json();
        v["owner"] = json!(owner);
        v["typeKeywords"] = json!(["Notebook", "Python 3"]);
        v["access"] = json!("private");
        v["url"] = Value::Null;
        v["orgId"] = json!(PORTAL_ID);
        v["size"] = json!(
            st.items
                .notebook_path(&item.id)
                .ok()
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len())
        );
        Ok(v)
    }
    .await;
    reply(&req, r)
}
