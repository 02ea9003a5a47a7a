/*
 * drop.h: the named reasons for which the engine drops a packet. Every drop is counted in
 * t2s_engine_stats.drops[reason]; t2s_drop_name() gives the Prometheus label value.
 */
#ifndef T2S_DROP_H
#define T2S_DROP_H

/* X(enum suffix, label) */
#define T2S_DROP_REASONS(X)                                                                        \
  X(NONE, "none")                                                                                  \
  X(TRUNCATED, "truncated")                   /* shorter than the smallest IP header */            \
  X(BAD_VERSION, "bad_version")               /* IP version neither 4 nor 6 */                     \
  X(IPV4_BAD_IHL, "ipv4_bad_ihl")             /* IHL < 5 or beyond the buffer */                   \
  X(IPV4_BAD_TOTAL_LEN, "ipv4_bad_total_len") /* total length < IHL or > buffer */                 \
  X(IPV4_BAD_CHECKSUM, "ipv4_bad_checksum")                                                        \
  X(IPV6_BAD_PAYLOAD_LEN, "ipv6_bad_payload_len")                                                  \
  X(IPV6_BAD_EXT_HEADER, "ipv6_bad_ext_header") /* extension header runs past the packet */        \
  X(IPV6_EXT_CHAIN_TOO_LONG, "ipv6_ext_chain_too_long")                                            \
  X(IPV6_JUMBOGRAM, "ipv6_jumbogram")                                                              \
  X(FRAGMENT, "fragment")                   /* fragment not (yet) reassembled */                   \
  X(BAD_SRC_ADDR, "bad_src_addr")           /* multicast, broadcast, unspecified source */         \
  X(BAD_DST_ADDR, "bad_dst_addr")           /* multicast, broadcast, unspecified dest */           \
  X(UNSUPPORTED_PROTO, "unsupported_proto") /* not TCP, UDP, ICMP, ICMPv6 */                       \
  X(TCP_TRUNCATED, "tcp_truncated")                                                                \
  X(TCP_BAD_DATA_OFFSET, "tcp_bad_data_offset")                                                    \
  X(TCP_BAD_CHECKSUM, "tcp_bad_checksum")                                                          \
  X(TCP_BAD_OPTION, "tcp_bad_option")       /* option length runs past the header */               \
  X(TCP_BAD_FLAGS, "tcp_bad_flags")         /* e.g. SYN+RST, SYN+FIN, no flags */                  \
  X(TCP_BAD_PORT, "tcp_bad_port")           /* port 0 */                                           \
  X(TCP_NO_CONNECTION, "tcp_no_connection") /* segment for no connection (RST sent) */             \
  X(TCP_OUT_OF_WINDOW, "tcp_out_of_window")                                                        \
  X(TCP_PAWS, "tcp_paws")               /* rejected by PAWS (RFC 7323) */                          \
  X(TCP_SYN_LIMIT, "tcp_syn_limit")     /* pending SYN cap reached */                              \
  X(TCP_FLOW_LIMIT, "tcp_flow_limit")   /* flow cap reached */                                     \
  X(TCP_RCVBUF_FULL, "tcp_rcvbuf_full") /* data beyond what the buffer can hold */                 \
  X(UDP_TRUNCATED, "udp_truncated")                                                                \
  X(UDP_BAD_LENGTH, "udp_bad_length")                                                              \
  X(UDP_BAD_CHECKSUM, "udp_bad_checksum")                                                          \
  X(UDP_UNSUPPORTED, "udp_unsupported") /* UDP not handled yet / disabled */                       \
  X(ICMP_TRUNCATED, "icmp_truncated")                                                              \
  X(ICMP_BAD_CHECKSUM, "icmp_bad_checksum")                                                        \
  X(ICMP_UNSUPPORTED_TYPE, "icmp_unsupported_type")                                                \
  X(OFFLINE, "offline")                 /* no route to the proxy, or asleep */                     \
  X(NO_BUFFER, "no_buffer")             /* out of memory or output space */                        \
  X(DEVICE_ERROR, "device_error")       /* the device refused an outgoing packet */                \
  X(FRAG_BAD, "frag_bad")               /* fragment length not a multiple of 8, or past 65535 */   \
  X(FRAG_OVERLAP, "frag_overlap")       /* overlapping fragments: the whole datagram dropped */    \
  X(FRAG_LIMIT, "frag_limit")           /* reassembly memory, datagram or fragment cap reached */  \
  X(FRAG_TIMEOUT, "frag_timeout")       /* datagram incomplete when its reassembly time ran out */ \
  X(UDP_QUEUE_FULL, "udp_queue_full")   /* setup queue of a UDP session full */                    \
  X(UDP_SEND_FAILED, "udp_send_failed") /* the upstream datagram socket refused it */              \
  X(UDP_SETUP_FAILED, "udp_setup_failed") /* queued while the association failed */                \
  X(UDP_NO_UDP, "udp_no_udp")             /* proxy without UDP: ICMP port unreachable sent */      \
  X(SOCKS5_UDP_FRAG, "socks5_udp_frag")   /* relay datagram with FRAG != 0 */                      \
  X(SOCKS5_UDP_BAD, "socks5_udp_bad")     /* relay datagram malformed or with a domain source */   \
  X(UDP_REPLY_FAMILY, "udp_reply_family") /* reply source of another family than the client */     \
  X(DNS_TCP_BAD, "dns_tcp_bad")       /* DNS over TCP: too long (fallback), bad framing (fake) */  \
  X(LOOP_GUARD, "loop_guard")         /* a flow from the TUN to the proxy's own address */         \
  X(FAKE_DNS_STALE, "fake_dns_stale") /* --fake-dns: a flow to a pool address no name holds */     \
  X(DNS_NOT_QUERY, "dns_not_query")   /* --fake-dns: a port-53 datagram that is no query */

typedef enum t2s_drop_reason {
#define T2S_DROP_ENUM(name, label) T2S_DROP_##name,
  T2S_DROP_REASONS(T2S_DROP_ENUM)
#undef T2S_DROP_ENUM
      T2S_DROP_MAX
} t2s_drop_reason;

/* The label of a drop reason ("tcp_bad_checksum"); "unknown" when out of range. */
const char *t2s_drop_name(int reason);

#endif
