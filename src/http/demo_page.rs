//! `GET /`: the demo page, plain HTML and JavaScript compiled into the binary (no build
//! step). It calls the public API with a key the visitor pastes (kept in localStorage).

use actix_web::http::header;
use actix_web::HttpResponse;

const PAGE: &str = include_str!("static/index.html");

/// The demo page.
#[utoipa::path(get, path = "/", tag = "ops",
    responses((status = 200, description = "The demo page (HTML).", body = String, content_type = "text/html")))]
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page itself holds no data; a new binary should show its new page at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE)
}
