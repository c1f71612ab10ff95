//! Spec names of message types, multipart types and error types and codes, for logs, text
//! renderings and metrics labels.

/// The `OFPT_*` name of a message type; `OFPT_UNKNOWN` for others.
pub fn msg_type_name(t: u8) -> &'static str {
    const NAMES: [&str; 30] = [
        "OFPT_HELLO",
        "OFPT_ERROR",
        "OFPT_ECHO_REQUEST",
        "OFPT_ECHO_REPLY",
        "OFPT_EXPERIMENTER",
        "OFPT_FEATURES_REQUEST",
        "OFPT_FEATURES_REPLY",
        "OFPT_GET_CONFIG_REQUEST",
        "OFPT_GET_CONFIG_REPLY",
        "OFPT_SET_CONFIG",
        "OFPT_PACKET_IN",
        "OFPT_FLOW_REMOVED",
        "OFPT_PORT_STATUS",
        "OFPT_PACKET_OUT",
        "OFPT_FLOW_MOD",
        "OFPT_GROUP_MOD",
        "OFPT_PORT_MOD",
        "OFPT_TABLE_MOD",
        "OFPT_MULTIPART_REQUEST",
        "OFPT_MULTIPART_REPLY",
        "OFPT_BARRIER_REQUEST",
        "OFPT_BARRIER_REPLY",
        "OFPT_QUEUE_GET_CONFIG_REQUEST",
        "OFPT_QUEUE_GET_CONFIG_REPLY",
        "OFPT_ROLE_REQUEST",
        "OFPT_ROLE_REPLY",
        "OFPT_GET_ASYNC_REQUEST",
        "OFPT_GET_ASYNC_REPLY",
        "OFPT_SET_ASYNC",
        "OFPT_METER_MOD",
    ];
    NAMES.get(t as usize).copied().unwrap_or("OFPT_UNKNOWN")
}

/// The `OFPMP_*` name of a multipart type.
pub fn multipart_type_name(t: u16) -> &'static str {
    const NAMES: [&str; 14] = [
        "OFPMP_DESC",
        "OFPMP_FLOW",
        "OFPMP_AGGREGATE",
        "OFPMP_TABLE",
        "OFPMP_PORT_STATS",
        "OFPMP_QUEUE",
        "OFPMP_GROUP",
        "OFPMP_GROUP_DESC",
        "OFPMP_GROUP_FEATURES",
        "OFPMP_METER",
        "OFPMP_METER_CONFIG",
        "OFPMP_METER_FEATURES",
        "OFPMP_TABLE_FEATURES",
        "OFPMP_PORT_DESC",
    ];
    match t {
        0xffff => "OFPMP_EXPERIMENTER",
        _ => NAMES.get(t as usize).copied().unwrap_or("OFPMP_UNKNOWN"),
    }
}

/// Error types and their codes (OpenFlow 1.3.5 section 7.4.4): (type name, code prefix, codes).
const ERRORS: &[(&str, &str, &[&str])] = &[
    ("OFPET_HELLO_FAILED", "OFPHFC_", &["INCOMPATIBLE", "EPERM"]),
    (
        "OFPET_BAD_REQUEST",
        "OFPBRC_",
        &[
            "BAD_VERSION",
            "BAD_TYPE",
            "BAD_MULTIPART",
            "BAD_EXPERIMENTER",
            "BAD_EXP_TYPE",
            "EPERM",
            "BAD_LEN",
            "BUFFER_EMPTY",
            "BUFFER_UNKNOWN",
            "BAD_TABLE_ID",
            "IS_SLAVE",
            "BAD_PORT",
            "BAD_PACKET",
            "MULTIPART_BUFFER_OVERFLOW",
        ],
    ),
    (
        "OFPET_BAD_ACTION",
        "OFPBAC_",
        &[
            "BAD_TYPE",
            "BAD_LEN",
            "BAD_EXPERIMENTER",
            "BAD_EXP_TYPE",
            "BAD_OUT_PORT",
            "BAD_ARGUMENT",
            "EPERM",
            "TOO_MANY",
            "BAD_QUEUE",
            "BAD_OUT_GROUP",
            "MATCH_INCONSISTENT",
            "UNSUPPORTED_ORDER",
            "BAD_TAG",
            "BAD_SET_TYPE",
            "BAD_SET_LEN",
            "BAD_SET_ARGUMENT",
        ],
    ),
    (
        "OFPET_BAD_INSTRUCTION",
        "OFPBIC_",
        &[
            "UNKNOWN_INST",
            "UNSUP_INST",
            "BAD_TABLE_ID",
            "UNSUP_METADATA",
            "UNSUP_METADATA_MASK",
            "BAD_EXPERIMENTER",
            "BAD_EXP_TYPE",
            "BAD_LEN",
            "EPERM",
        ],
    ),
    (
        "OFPET_BAD_MATCH",
        "OFPBMC_",
        &[
            "BAD_TYPE",
            "BAD_LEN",
            "BAD_TAG",
            "BAD_DL_ADDR_MASK",
            "BAD_NW_ADDR_MASK",
            "BAD_WILDCARDS",
            "BAD_FIELD",
            "BAD_VALUE",
            "BAD_MASK",
            "BAD_PREREQ",
            "DUP_FIELD",
            "EPERM",
        ],
    ),
    (
        "OFPET_FLOW_MOD_FAILED",
        "OFPFMFC_",
        &[
            "UNKNOWN",
            "TABLE_FULL",
            "BAD_TABLE_ID",
            "OVERLAP",
            "EPERM",
            "BAD_TIMEOUT",
            "BAD_COMMAND",
            "BAD_FLAGS",
        ],
    ),
    (
        "OFPET_GROUP_MOD_FAILED",
        "OFPGMFC_",
        &[
            "GROUP_EXISTS",
            "INVALID_GROUP",
            "WEIGHT_UNSUPPORTED",
            "OUT_OF_GROUPS",
            "OUT_OF_BUCKETS",
            "CHAINING_UNSUPPORTED",
            "WATCH_UNSUPPORTED",
            "LOOP",
            "UNKNOWN_GROUP",
            "CHAINED_GROUP",
            "BAD_TYPE",
            "BAD_COMMAND",
            "BAD_BUCKET",
            "BAD_WATCH",
            "EPERM",
        ],
    ),
    (
        "OFPET_PORT_MOD_FAILED",
        "OFPPMFC_",
        &[
            "BAD_PORT",
            "BAD_HW_ADDR",
            "BAD_CONFIG",
            "BAD_ADVERTISE",
            "EPERM",
        ],
    ),
    (
        "OFPET_TABLE_MOD_FAILED",
        "OFPTMFC_",
        &["BAD_TABLE", "BAD_CONFIG", "EPERM"],
    ),
    (
        "OFPET_QUEUE_OP_FAILED",
        "OFPQOFC_",
        &["BAD_PORT", "BAD_QUEUE", "EPERM"],
    ),
    (
        "OFPET_SWITCH_CONFIG_FAILED",
        "OFPSCFC_",
        &["BAD_FLAGS", "BAD_LEN", "EPERM"],
    ),
    (
        "OFPET_ROLE_REQUEST_FAILED",
        "OFPRRFC_",
        &["STALE", "UNSUP", "BAD_ROLE"],
    ),
    (
        "OFPET_METER_MOD_FAILED",
        "OFPMMFC_",
        &[
            "UNKNOWN",
            "METER_EXISTS",
            "INVALID_METER",
            "UNKNOWN_METER",
            "BAD_COMMAND",
            "BAD_FLAGS",
            "BAD_RATE",
            "BAD_BURST",
            "BAD_BAND",
            "BAD_BAND_VALUE",
            "OUT_OF_METERS",
            "OUT_OF_BANDS",
        ],
    ),
    (
        "OFPET_TABLE_FEATURES_FAILED",
        "OFPTFFC_",
        &[
            "BAD_TABLE",
            "BAD_METADATA",
            "BAD_TYPE",
            "BAD_LEN",
            "BAD_ARGUMENT",
            "EPERM",
        ],
    ),
];

/// The `OFPET_*` name of an error type and the name of its code without prefix where known
/// (e.g. `("OFPET_BAD_MATCH", Some("BAD_PREREQ"))`).
pub fn error_names(err_type: u16, code: u16) -> (&'static str, Option<&'static str>) {
    if err_type == 0xffff {
        return ("OFPET_EXPERIMENTER", None);
    }
    match ERRORS.get(err_type as usize) {
        Some((t, _, codes)) => (t, codes.get(code as usize).copied()),
        None => ("OFPET_UNKNOWN", None),
    }
}

/// The full code name with its prefix, e.g. `OFPBMC_BAD_PREREQ`, or the number.
pub fn error_code_name(err_type: u16, code: u16) -> String {
    match ERRORS.get(err_type as usize) {
        Some((_, prefix, codes)) if err_type != 0xffff => match codes.get(code as usize) {
            Some(c) => format!("{prefix}{c}"),
            None => code.to_string(),
        },
        _ => code.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(msg_type_name(14), "OFPT_FLOW_MOD");
        assert_eq!(msg_type_name(200), "OFPT_UNKNOWN");
        assert_eq!(error_code_name(4, 9), "OFPBMC_BAD_PREREQ");
        assert_eq!(error_code_name(2, 10), "OFPBAC_MATCH_INCONSISTENT");
        assert_eq!(
            error_names(13, 5),
            ("OFPET_TABLE_FEATURES_FAILED", Some("EPERM"))
        );
        assert_eq!(error_names(99, 0), ("OFPET_UNKNOWN", None));
        assert_eq!(multipart_type_name(0xffff), "OFPMP_EXPERIMENTER");
    }

    #[test]
    fn error_constants_name_what_they_say() {
        use crate::msg::*;
        // Each constant's own name is what the names table says of its value.
        macro_rules! named {
            ($($t:ident: $($c:ident),+;)+) => {$($(
                assert_eq!(error_names($t, $c).0, stringify!($t));
                assert_eq!(error_code_name($t, $c), stringify!($c));
            )+)+};
        }
        named! {
            OFPET_HELLO_FAILED: OFPHFC_INCOMPATIBLE;
            OFPET_BAD_REQUEST: OFPBRC_BAD_TYPE, OFPBRC_BAD_MULTIPART, OFPBRC_BUFFER_UNKNOWN,
                OFPBRC_IS_SLAVE, OFPBRC_BAD_PORT;
            OFPET_BAD_ACTION: OFPBAC_BAD_TYPE, OFPBAC_BAD_EXPERIMENTER, OFPBAC_BAD_OUT_PORT,
                OFPBAC_BAD_OUT_GROUP, OFPBAC_MATCH_INCONSISTENT, OFPBAC_BAD_SET_TYPE,
                OFPBAC_BAD_SET_ARGUMENT;
            OFPET_BAD_INSTRUCTION: OFPBIC_UNKNOWN_INST, OFPBIC_UNSUP_INST, OFPBIC_BAD_TABLE_ID,
                OFPBIC_BAD_EXPERIMENTER;
            OFPET_BAD_MATCH: OFPBMC_BAD_FIELD;
            OFPET_FLOW_MOD_FAILED: OFPFMFC_BAD_TABLE_ID, OFPFMFC_OVERLAP, OFPFMFC_BAD_COMMAND;
            OFPET_GROUP_MOD_FAILED: OFPGMFC_GROUP_EXISTS, OFPGMFC_INVALID_GROUP,
                OFPGMFC_CHAINING_UNSUPPORTED, OFPGMFC_UNKNOWN_GROUP, OFPGMFC_BAD_TYPE,
                OFPGMFC_BAD_COMMAND, OFPGMFC_BAD_BUCKET, OFPGMFC_BAD_WATCH;
            OFPET_METER_MOD_FAILED: OFPMMFC_METER_EXISTS, OFPMMFC_INVALID_METER,
                OFPMMFC_UNKNOWN_METER, OFPMMFC_BAD_COMMAND, OFPMMFC_BAD_FLAGS, OFPMMFC_BAD_RATE,
                OFPMMFC_BAD_BAND;
        }
    }
}
