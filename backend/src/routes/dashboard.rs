//! The built dashboard's files, on the dashboard's listener only (see
//! [`crate::settings::Dashboard`]): everything that is not an API route. Unknown paths answer
//! `index.html`, so the page's own router takes deep links.

use axum::http::{HeaderValue, header};
use axum::response::Response;
use std::path::Path;
use tower_http::services::{ServeDir, ServeFile};

/// The page is the operator's console: no other site may frame it (a framed page can be
/// clicked through, "clickjacking") or have its files read as another type.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

pub(crate) fn files(dist: &Path) -> axum::Router<super::AppState> {
    let files = ServeDir::new(dist).fallback(ServeFile::new(dist.join("index.html")));
    axum::Router::new().fallback_service(files).layer(axum::middleware::map_response(harden))
}
