//! One row of the route table: method, path, who may call it, the rate-limit class it
//! counts against, the largest body it takes, and what it takes and answers (for the
//! OpenAPI document). The router, the guard, the authorization tests and the document are
//! all built from these rows, so none of them can disagree with the others.

use super::guard::rate_limit::LimitClass;
use crate::app::AppState;
use crate::auth::{Access, Need};
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::MethodRouter;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{RefOr, Schema};

/// Schemas a payload needs in `components.schemas`, by name.
pub type SchemaSink = Vec<(String, RefOr<Schema>)>;

/// The JSON (or other) document a route takes or answers, as a schema.
#[derive(Clone, Copy)]
pub struct Payload {
    /// The schema to place at the payload (usually a `$ref` to a named component).
    pub schema: fn() -> RefOr<Schema>,
    /// Adds the named schemas it refers to.
    pub register: fn(&mut SchemaSink),
    pub content_type: &'static str,
}

impl Payload {
    /// A named type: referenced by name, its schema added to the components.
    pub fn of<T: utoipa::ToSchema>() -> Payload {
        Payload {
            schema: || RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name())),
            register: |sink| {
                sink.push((T::name().into_owned(), T::schema()));
                T::schemas(sink);
            },
            content_type: "application/json",
        }
    }

    /// A JSON array of a named type (seed 000 answers bare arrays).
    pub fn list_of<T: utoipa::ToSchema>() -> Payload {
        Payload {
            schema: || utoipa::openapi::schema::ArrayBuilder::new().items((Payload::of::<T>().schema)()).into(),
            ..Payload::of::<T>()
        }
    }

    /// A JSON object whose members the seeds leave open.
    pub fn free_form() -> Payload {
        Payload {
            schema: || {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(true)))
                    .into()
            },
            register: |_| {},
            content_type: "application/json",
        }
    }

    pub fn with_content_type(self, content_type: &'static str) -> Payload {
        Payload { content_type, ..self }
    }

    /// Plain text (Prometheus' exposition format).
    pub fn text() -> Payload {
        Payload {
            schema: || utoipa::openapi::schema::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String).into(),
            register: |_| {},
            content_type: "text/plain",
        }
    }
}

/// The documentation of a route beyond what its method, path and access say.
#[derive(Clone, Default)]
pub struct Doc {
    pub summary: std::borrow::Cow<'static, str>,
    pub tag: &'static str,
    pub body: Option<Payload>,
    /// Success answers: status and payload (`None`: no body).
    pub answers: Vec<(u16, Option<Payload>)>,
    /// Query parameters, from an `IntoParams` type.
    pub query: Option<fn() -> Vec<Parameter>>,
    /// Error statuses beyond those the table derives (see `openapi::error_statuses`).
    pub errors: Vec<u16>,
}

/// One route: what the router, the guard and the document need to know of it.
#[derive(Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub class: LimitClass,
    /// The largest body accepted, in bytes (`None`: axum's default, 2 MB, for routes
    /// that take no body).
    pub body_limit: Option<usize>,
    pub doc: Doc,
}

impl std::fmt::Debug for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteSpec")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("access", &self.access)
            .field("class", &self.class)
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl RouteSpec {
    /// Path parameters of the template, in order: `/a/{id}/b/{name}` gives `id`, `name`.
    pub fn path_params(&self) -> Vec<&'static str> {
        self.path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
    }
}

/// A row being written: the spec and the handler it routes to.
pub struct Route {
    pub spec: RouteSpec,
    pub handler: MethodRouter<AppState>,
}

/// A public route in the `api` class; the builder methods say the rest.
pub fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> Route {
    Route {
        spec: RouteSpec {
            method,
            path,
            access: Access::Public,
            class: LimitClass::Api,
            body_limit: None,
            doc: Doc::default(),
        },
        handler,
    }
}

impl Route {
    /// Who may call it: the guard type its handler takes (`Caller<CanRead>` gives `CanRead`).
    pub fn access<N: Need>(mut self) -> Self {
        self.spec.access = N::ACCESS;
        self
    }

    pub fn class(mut self, class: LimitClass) -> Self {
        self.spec.class = class;
        self
    }

    pub fn summary(mut self, tag: &'static str, summary: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.spec.doc.tag = tag;
        self.spec.doc.summary = summary.into();
        self
    }

    /// Takes a JSON body of type `T`, at most `limit` bytes.
    pub fn body<T: utoipa::ToSchema>(self, limit: usize) -> Self {
        self.body_payload(Payload::of::<T>(), limit)
    }

    pub fn body_payload(mut self, payload: Payload, limit: usize) -> Self {
        self.spec.doc.body = Some(payload);
        self.spec.body_limit = Some(limit);
        self
    }

    /// Answers `status` with a `T`.
    pub fn answers<T: utoipa::ToSchema>(self, status: u16) -> Self {
        self.answers_payload(status, Some(Payload::of::<T>()))
    }

    pub fn answers_payload(mut self, status: u16, payload: Option<Payload>) -> Self {
        self.spec.doc.answers.push((status, payload));
        self
    }

    /// Takes the query parameters of `Q`.
    pub fn query<Q: utoipa::IntoParams>(mut self) -> Self {
        self.spec.doc.query = Some(|| Q::into_params(|| Some(ParameterIn::Query)));
        self
    }

    /// May also fail with these statuses.
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        self.spec.doc.errors.extend_from_slice(statuses);
        self
    }

    /// The row, with the body limit applied to its handler.
    pub fn build(self) -> (RouteSpec, MethodRouter<AppState>) {
        let handler = match self.spec.body_limit {
            Some(n) => self.handler.layer(DefaultBodyLimit::max(n)),
            None => self.handler,
        };
        (self.spec, handler)
    }
}

/// A JSON body that its handler reads as a value, because its parser reports every
/// problem at once under the field names the client used (several seeds name one field
/// differently); `$shape` describes it in the document. Used only where a seed makes the
/// body's shape open.
#[macro_export]
macro_rules! json_body {
    ($(#[$doc:meta])* $name:ident, $shape:ty) => {
        $(#[$doc])*
        #[derive(Debug, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub serde_json::Value);

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                <$shape as utoipa::PartialSchema>::schema()
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                <$shape as utoipa::ToSchema>::name()
            }
            fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
                <$shape as utoipa::ToSchema>::schemas(schemas)
            }
        }
    };
}
