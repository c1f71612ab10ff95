//! The fabric as configured: the topology file ([`topology`]), the base pipeline every switch
//! gets from it ([`plan`]) and generated fabrics for tests and benchmarks ([`gen`]). Pure
//! functions of the configuration; nothing here knows of migrations or sockets.

pub mod gen;
pub mod plan;
pub mod topology;
