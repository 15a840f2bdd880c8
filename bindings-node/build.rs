//! Links the addon against the Node-API symbols of the host process (macOS, Windows).

fn main() {
    napi_build::setup();
}
