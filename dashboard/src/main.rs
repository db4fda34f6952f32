fn main() {
    dioxus::launch(dashboard::components::app::App);
}
