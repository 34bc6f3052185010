//! The OpenAPI 3.1 document (`GET /openapi.json`) and its viewer (`GET /docs`).
//!
//! Each handler carries its own `#[utoipa::path]` annotation next to its code; this module
//! only lists them. Adding an endpoint to the document is one line in `paths(...)`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{demo_page, events, experiments, feed, generate, influencers, ops, people, provenance};

/// The name of the security scheme every `/v1` path requires.
pub const API_KEY: &str = "api_key";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Stylecast",
        description = "Social engagement in, personalized influencer-style images out. \
            Every `/v1` call needs an API key sent as `Authorization: Bearer <key>` \
            (`stylecast keys create`, or the bootstrap admin key `STYLECAST_ADMIN_KEY`); \
            a missing or wrong key answers 401, a key without the operation's scope 403. \
            Every error body is `{\"code\", \"message\"}`.",
        license(name = "MIT")
    ),
    paths(
        demo_page::index,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        events::post_events,
        people::get_user,
        people::erase_user,
        influencers::erase_influencer,
        people::get_recommendations,
        people::get_interests,
        people::get_influencer,
        influencers::put_influencer,
        influencers::post_photo,
        influencers::get_style,
        generate::post_generate,
        feed::put_photo,
        feed::delete_photo,
        feed::get_feed,
        feed::get_image,
        provenance::post_verify,
        experiments::put_experiment,
        experiments::list_experiments,
    ),
    modifiers(&BearerKey),
    tags(
        (name = "ops", description = "Liveness, readiness and metrics (no key needed)."),
        (name = "events", description = "Engagement ingest (scope `ingest`)."),
        (name = "people", description = "Users, influencers, interests and recommendations (scope `read`)."),
        (name = "styles", description = "Influencer profiles and reference photos (scope `admin` to write)."),
        (name = "generate", description = "Personalized restyling (scope `generate`)."),
        (name = "provenance", description = "Which generation made an image, from its invisible watermark (scope `read`)."),
        (name = "experiments", description = "A/B tests over the ALS model version, blend temperature, feed mix and generator (scope `admin` to define, `read` to list); results in the analyst views."),
        (name = "feeds", description = "Stored user photos (scope `generate`), feeds (scope `read`) and their images (public by content hash)."),
    )
)]
pub struct ApiDoc;

/// Registers the API-key scheme the paths' `security(("api_key" = []))` refers to.
struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sck_<id>_<secret> or the bootstrap admin key")
                    .description(Some("An API key: `Authorization: Bearer <key>`."))
                    .build(),
            ),
        );
    }
}

/// The document, built once per call (it is small; `/openapi.json` is not a hot path).
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_v1_path_requires_the_api_key() {
        let doc = document();
        // Images are public by design: their id is the SHA-256 of the bytes.
        let keyed = |p: &str| p.starts_with("/v1") && !p.starts_with("/v1/images/");
        for (path, item) in doc.paths.paths.iter().filter(|(p, _)| keyed(p)) {
            let operations = [&item.get, &item.put, &item.post, &item.delete];
            for operation in operations.into_iter().flatten() {
                let security = operation.security.as_ref().expect("security");
                let text = serde_json::to_string(security).expect("json");
                assert!(text.contains(API_KEY), "{path} lacks {API_KEY}: {text}");
            }
        }
    }
}
