/// Request handling is allocation-heavy (protobuf, HTTP/2 frames): mimalloc.
#[global_allocator]
static ALLOCATOR: qualify_platform::Allocator = qualify_platform::Allocator;

fn main() -> anyhow::Result<()> {
    qualify_platform::service_main::<qualify_acceptance::Acceptance>()
}
