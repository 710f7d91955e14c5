//! Every gRPC method the server answers, in one table built from the service names the code
//! generators emit: authorization, the metrics' method labels, health reporting and the tests
//! all read it, so a method added to a proto is added in one place.

use std::sync::LazyLock;

use crate::{
    auth::Role,
    pb::khabar::v1::{article_service_server, ingest_service_server},
    pb::raw::feed_service_server,
};

/// Who may call a method when tokens are configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Health checks: open unless `--auth-health`, then any valid token.
    Health,
    /// Server reflection: open unless `--auth-reflection`, then any valid token.
    Reflection,
    /// A token with this role (or admin).
    Role(Role),
}

/// A service the server hosts and its methods.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// Fully qualified name, as in request paths.
    pub name: &'static str,
    /// Its methods and who may call each.
    pub methods: &'static [(&'static str, Access)],
    /// Whether it is one of khabar's own services (its health is reported by name).
    pub khabar: bool,
}

const INGEST: Access = Access::Role(Role::Ingest);
const READ: Access = Access::Role(Role::Read);
const ADMIN: Access = Access::Role(Role::Admin);

/// Every service the server hosts.
pub const SERVICES: [Service; 6] = [
    Service {
        name: ingest_service_server::SERVICE_NAME,
        methods: &[("Ingest", INGEST), ("IngestStream", INGEST)],
        khabar: true,
    },
    Service {
        name: article_service_server::SERVICE_NAME,
        methods: &[
            ("GetArticle", READ),
            ("ListArticles", READ),
            ("GetStory", READ),
            ("RetractArticle", ADMIN),
        ],
        khabar: true,
    },
    Service {
        name: feed_service_server::SERVICE_NAME,
        methods: &[
            ("Subscribe", READ),
            ("Ack", READ),
            ("GetConsumer", READ),
            ("ListConsumers", READ),
            ("DeleteConsumer", ADMIN),
        ],
        khabar: true,
    },
    Service {
        name: tonic_health::pb::health_server::SERVICE_NAME,
        methods: &[
            ("Check", Access::Health),
            ("Watch", Access::Health),
            ("List", Access::Health),
        ],
        khabar: false,
    },
    Service {
        name: tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
        methods: &[("ServerReflectionInfo", Access::Reflection)],
        khabar: false,
    },
    Service {
        name: tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
        methods: &[("ServerReflectionInfo", Access::Reflection)],
        khabar: false,
    },
];

/// One method of [`SERVICES`].
#[derive(Debug, Clone)]
pub struct Method {
    /// Its service's fully qualified name.
    pub service: &'static str,
    /// The method's name.
    pub name: &'static str,
    /// The request path, `/service/Method`.
    pub path: String,
    /// Who may call it.
    pub access: Access,
}

static METHODS: LazyLock<Vec<Method>> = LazyLock::new(|| {
    SERVICES
        .iter()
        .flat_map(|service| {
            service.methods.iter().map(|&(name, access)| Method {
                service: service.name,
                name,
                path: format!("/{}/{name}", service.name),
                access,
            })
        })
        .collect()
});

/// Every method the server answers.
pub fn all() -> &'static [Method] {
    &METHODS
}

/// The method a request path names, if the server answers it.
pub fn find(path: &str) -> Option<&'static Method> {
    METHODS.iter().find(|method| method.path == path)
}

/// khabar's own services, whose health is reported by name.
pub fn khabar_services() -> impl Iterator<Item = &'static str> {
    SERVICES.iter().filter(|s| s.khabar).map(|s| s.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_unique_and_well_formed() {
        let mut paths: Vec<&str> = all().iter().map(|m| m.path.as_str()).collect();
        assert_eq!(paths.len(), 16);
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), 16, "duplicate paths");
        assert_eq!(
            find("/khabar.v1.FeedService/DeleteConsumer").map(|m| m.access),
            Some(ADMIN)
        );
        assert_eq!(
            find("/khabar.v1.ArticleService/GetStory").map(|m| m.access),
            Some(READ)
        );
        assert!(find("/khabar.v1.FeedService/Nope").is_none());
        assert_eq!(
            khabar_services().collect::<Vec<_>>(),
            [
                "khabar.v1.IngestService",
                "khabar.v1.ArticleService",
                "khabar.v1.FeedService"
            ]
        );
    }
}
