pub fn flow_mod_line(_f: &crate::FlowMod) -> String { String::new() }
