fn main() -> anyhow::Result<()> {
    qualify_platform::service_main::<qualify_metrics::Metrics>()
}
