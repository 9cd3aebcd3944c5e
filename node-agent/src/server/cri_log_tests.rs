use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn lines(file: &str) -> Vec<LogLine> {
    let mut buf = file.as_bytes().to_vec();
    let mut assembler = LineAssembler::default();
    let mut out: Vec<LogLine> =
        drain_records(&mut buf).into_iter().map(|r| r.expect("record")).filter_map(|r| assembler.push(r)).collect();
    out.extend(assembler.flush());
    out
}

fn render_all(file: &str, options: &LogOptions) -> String {
    let mut filter = LineFilter::new(options);
    let mut tail = Tail::new(options.tail_lines);
    for line in lines(file) {
        tail.push(line, &filter);
    }
    let selected = tail.into_lines();
    let bytes: Vec<u8> = selected.iter().flat_map(|l| filter.render(l)).collect();
    String::from_utf8(bytes).expect("utf-8")
}

const FILE: &str = "2024-05-01T10:00:00.1Z stdout F line 1\n\
2024-05-01T10:00:01.123456789Z stderr F oops\n\
2024-05-01T10:00:02.5+00:00 stdout P part-\n\
2024-05-01T10:00:03Z stdout F two\n\
2024-05-01T10:00:04.000000001Z stdout F\n\
2024-05-01T10:00:05Z stdout F last line\n";

#[test]
fn records_parse_with_varying_timestamp_widths_and_tags() {
    let r = parse_record(b"2024-05-01T10:00:01.123456789Z stderr F oops x").expect("record");
    assert_eq!(r.stream, LogStream::Stderr);
    assert!(!r.partial);
    assert_eq!(r.text, b"oops x");
    assert_eq!(r.time, ts("2024-05-01T10:00:01.123456789Z"));
    let r = parse_record(b"2024-05-01T10:00:02.5+02:00 stdout P abc").expect("record");
    assert!(r.partial);
    assert_eq!(r.time, ts("2024-05-01T08:00:02.5Z"));
    assert_eq!(parse_record(b"2024-05-01T10:00:00Z stdout F").expect("empty line").text, b"");
    for bad in
        ["", "garbage", "2024-05-01T10:00:00Z stdin F x", "2024-05-01T10:00:00Z stdout X x", "yesterday stdout F x"]
    {
        assert!(parse_record(bad.as_bytes()).is_err(), "{bad:?} must not parse");
    }
}

#[test]
fn partial_records_join_into_one_line_per_stream() {
    let got = lines(FILE);
    let texts: Vec<String> = got.iter().map(|l| String::from_utf8_lossy(&l.content).into_owned()).collect();
    assert_eq!(texts, ["line 1\n", "oops\n", "part-two\n", "\n", "last line\n"]);
    assert_eq!(got[2].time, ts("2024-05-01T10:00:02.5Z"), "a joined line has its first record's time");
    // Interleaved stderr does not break a stdout partial line; an unfinished one is flushed at the end.
    let got = lines("2024-05-01T10:00:00Z stdout P a\n2024-05-01T10:00:01Z stderr F e\n2024-05-01T10:00:02Z stdout F b\n2024-05-01T10:00:03Z stdout P tail");
    let texts: Vec<String> = got.iter().map(|l| String::from_utf8_lossy(&l.content).into_owned()).collect();
    assert_eq!(texts, ["e\n", "ab\n"], "the unterminated last record stays buffered");
    let mut buf = b"2024-05-01T10:00:03Z stdout P tail\n".to_vec();
    let mut a = LineAssembler::default();
    assert!(a.push(drain_records(&mut buf).remove(0).expect("record")).is_none());
    assert_eq!(a.flush()[0].content, b"tail", "a partial line without F is printed without a newline");
}

#[test]
fn drain_keeps_an_unfinished_record_for_the_next_read() {
    let mut buf = b"2024-05-01T10:00:00Z stdout F one\n2024-05-01T10:00:01Z std".to_vec();
    let records = drain_records(&mut buf);
    assert_eq!(records.len(), 1);
    assert_eq!(buf, b"2024-05-01T10:00:01Z std");
    buf.extend_from_slice(b"out F two\n");
    assert_eq!(drain_records(&mut buf)[0].as_ref().expect("record").text, b"two");
    assert!(buf.is_empty());
}

#[test]
fn tail_since_timestamps_and_limit_bytes() {
    let all = LogOptions::default();
    assert_eq!(render_all(FILE, &all), "line 1\noops\npart-two\n\nlast line\n");
    let tail2 = LogOptions { tail_lines: Some(2), ..Default::default() };
    assert_eq!(render_all(FILE, &tail2), "\nlast line\n");
    assert_eq!(render_all(FILE, &LogOptions { tail_lines: Some(0), ..Default::default() }), "");
    assert_eq!(render_all(FILE, &LogOptions { tail_lines: Some(99), ..Default::default() }), render_all(FILE, &all));
    let since = LogOptions { since: Some(ts("2024-05-01T10:00:02Z")), ..Default::default() };
    assert_eq!(render_all(FILE, &since), "part-two\n\nlast line\n");
    let stamped = LogOptions { timestamps: true, tail_lines: Some(1), ..Default::default() };
    assert_eq!(render_all(FILE, &stamped), "2024-05-01T10:00:05.000000000Z last line\n");
    let stamped = LogOptions { timestamps: true, tail_lines: Some(4), ..Default::default() };
    assert!(render_all(FILE, &stamped).starts_with("2024-05-01T10:00:01.123456789Z oops\n"));
    let limited = LogOptions { limit_bytes: Some(10), ..Default::default() };
    assert_eq!(render_all(FILE, &limited), "line 1\noop");
    // since and tail combine: the last line among those after `since`.
    let both = LogOptions { since: Some(ts("2024-05-01T10:00:00.5Z")), tail_lines: Some(1), ..Default::default() };
    assert_eq!(render_all(FILE, &both), "last line\n");
}

#[test]
fn the_byte_limit_is_shared_across_calls_and_then_exhausted() {
    let mut filter = LineFilter::new(&LogOptions { limit_bytes: Some(5), ..Default::default() });
    let got = lines(FILE);
    assert_eq!(filter.render(&got[0]), b"line ");
    assert!(filter.exhausted());
    assert!(filter.render(&got[1]).is_empty());
}

#[test]
fn query_parameters_parse_like_upstream_pod_log_options() {
    let now = ts("2024-05-01T10:00:10Z");
    let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    let o = LogOptions::from_query(
        &q(&[
            ("follow", "true"),
            ("tailLines", "2"),
            ("timestamps", "1"),
            ("limitBytes", "100"),
            ("sinceSeconds", "4"),
        ]),
        now,
    )
    .expect("options");
    assert!(o.follow && o.timestamps && !o.previous);
    assert_eq!((o.tail_lines, o.limit_bytes), (Some(2), Some(100)));
    assert_eq!(o.since, Some(ts("2024-05-01T10:00:06Z")));
    let o = LogOptions::from_query(&q(&[("sinceTime", "2024-05-01T09:00:00Z"), ("previous", "True")]), now)
        .expect("options");
    assert_eq!(o.since, Some(ts("2024-05-01T09:00:00Z")));
    assert!(o.previous);
    for bad in [
        &[("tailLines", "-1")][..],
        &[("limitBytes", "0")],
        &[("sinceSeconds", "0")],
        &[("follow", "yes")],
        &[("sinceTime", "noon")],
        &[("sinceSeconds", "5"), ("sinceTime", "2024-05-01T09:00:00Z")],
    ] {
        let err = LogOptions::from_query(&q(bad), now).expect_err("rejected");
        assert!(err.to_string().contains(bad[bad.len() - 1].0), "{err}");
    }
}

#[test]
fn timestamps_have_nine_fraction_digits_in_utc() {
    assert_eq!(format_timestamp(ts("2024-05-01T10:00:02.5+02:00")), "2024-05-01T08:00:02.500000000Z");
    assert_eq!(format_timestamp(ts("2024-05-01T10:00:00Z")), "2024-05-01T10:00:00.000000000Z");
}
