/*
 * vncsasl - a minimal VNC (RFB) server that authenticates viewers with
 * GNU SASL inside VeNCrypt TLS and authorizes them with a flat-file ACL.
 *
 * How it works.  One process, one poll() loop (serve(): build the pollfd
 * set, wait, dispatch).  Every socket is non-blocking.  Each turn rebuilds
 * the pollfd set from state: listeners only while below the client cap, a
 * client's POLLOUT only while it has queued output, the framebuffer
 * source's descriptor if it has one.  The poll timeout is the nearest
 * deadline (cl_due(), the one place they are derived): handshake and
 * stall deadlines, lingering closes, held answers, and - only while some
 * viewer waits for an update - the moment the source says it will have
 * news.  Nothing is ever done for a screen no one is waiting to see.
 *
 * Each connection is a struct client with an explicit state (enum state)
 * and a "call this handler when N bytes are buffered" pair (cl_expect(),
 * after QEMU's vnc_read_when()).  Handlers read the buffered bytes only
 * through a bounds-checked reader (struct rd) whose error is sticky, so a
 * handler reads all fields and checks once.  Every length that comes off
 * the wire has a named limit; needing more than the limit is a protocol
 * error that closes that one client with a logged reason.  A failing
 * client is only marked dead; the loop reaps it after the pass, so no
 * client is freed inside its own handler.  Security types (sectypes[])
 * and client messages (msgtab[]) are tables.
 *
 * Updates: the source reports damaged rectangles; every initialised
 * client accumulates them in its own tile map.  A client gets an update
 * only while it has an outstanding FramebufferUpdateRequest and its
 * output queue is below OUT_LOW (backpressure: a slow viewer costs at most
 * about one frame of memory and never slows the others), or, once it has
 * turned on ContinuousUpdates, while the window that its fence answers
 * allow has room (Pacing: no stale frames queue on a slow link).  Dirty
 * 16x16 tiles are sorted by what they hold (one colour, few, many) and
 * merged into rectangles of one kind (bands, written out as they are
 * made); each is sent the way that costs least - CPU plus bytes over the
 * link's measured rate - among the encodings the viewer listed (Raw,
 * Hextile, ZRLE, Tight with JPEG), the viewer's order breaking ties; what
 * one viewer's update made is kept, and viewers in step get the same
 * bytes (Encoders).
 *
 * The sections, in order:
 *   Limits, RFB numbers, Types    every bound named, with its reason
 *   Security types                the table; struct server
 *   Signals, Logging              flags only; one log function
 *   Buffers, readers, writers     struct buf, struct rd, wr_*()
 *   Text                          comma lists, configuration files
 *   Clients                       cl_expect(), cl_fail(), cl_linger()
 *   ACL                           rules, first match wins
 *   Credentials                   the password file, the GNU SASL callback
 *   TLS                           GnuTLS inside the loop
 *   Authentication                ProtocolVersion to SecurityResult, in
 *                                 handshake order: version, security list,
 *                                 VeNCrypt, the decision, None, VNC, SASL,
 *                                 Plain.  A new security type is a row in
 *                                 sectypes[], its handlers here, and its
 *                                 line in the man page and README.
 *   Pixel formats, Encoders       one translation path; Raw, ZRLE,
 *                                 Hextile, Tight, JPEG; plans, the choice,
 *                                 the link's rate
 *   Damage and updates            tile maps, rectangles, the source's hooks
 *   Pacing                        ContinuousUpdates, fences, the window
 *   Client messages               ClientInit, then msgtab[]; the clipboard
 *                                 (Latin-1, or UTF-8 for the Extended
 *                                 Clipboard); QEMU key events
 *   Client I/O                    reads, TLS records, flushes, cl_new()
 *   WebSocket                     wss:// (-W): HTTP, the files of -F,
 *                                 frames between TLS and the RFB client
 *   Listeners and the poll loop   accept, deadlines, serve()
 *   Configuration                 option values and files (start-up errors)
 *   main                          its steps, one function each
 */
#if defined(__linux__) || defined(__GLIBC__)
#define _DEFAULT_SOURCE		/* POSIX 2008 + setgroups() under -std=c99 */
#endif

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <grp.h>
#include <setjmp.h>
#include <ifaddrs.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <gsasl.h>
#include <nettle/des.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>
#include <zlib.h>
#include <jpeglib.h>

#include "vncsasl.h"

/* ---------------------------------------------------------------------
 * Limits.  Each says why it is what it is.
 * ------------------------------------------------------------------- */

#define MAX_CLIENTS	64	/* default cap; -M changes it */
#define PREAUTH_MAX	32	/* unauthenticated connections at once */
#define PREAUTH_PER_ADDR 8	/* ... from one address: parallel guessing */
#define FAIL_DELAY_MS	250	/* after a failure, the address's next
				   attempt waits this, doubling per failure */
#define FAIL_DELAY_CAP	8	/* seconds: -o fail-delay's default */
#define FAIL_FORGET_MS	(10 * 60 * 1000) /* a quiet address starts over */
#define ADDR_RECS	1024	/* addresses remembered (IPv6: /64s);
				   the quietest is forgotten first */
#define HASH_RATE	(4 * SCRAM_ITER_MAX) /* -o hash-rate: password
				   hashing for unauthenticated peers, all
				   together, in PBKDF2 iterations a second:
				   ~17% of a core (65536 iterations take
				   42 ms, measured); one address gets a
				   quarter */
#define HASH_TAU_US	0	/* no bursts: one derivation (42 ms at most)
				   holds the loop at a time, never two */
#define HASH_TAU_ADDR_US 0	/* one address: no burst */
#define MAX_LISTENERS	16	/* -l addresses times address families */
#define ACCEPT_PAUSE_MS	500	/* out of descriptors: accept() again after
				   this, instead of spinning on a listener
				   that stays readable */
#define IN_CHUNK	16384	/* bytes read per client per turn: fairness */
#define CUT_TEXT_MAX	(1 << 20) /* ClientCutText: a big Latin-1 clipboard */
#define ENCODINGS_MAX	256	/* SetEncodings entries; viewers send < 40 */
#define SCREENS_MAX	16	/* SetDesktopSize screens; we have one */
#define NAME_MAX_LEN	255	/* desktop name sent in ServerInit */
#define REASON_MAX	255	/* failure reasons we send */
#define OUT_LOW		(256 * 1024) /* encode updates only below this */
#define OUT_SLACK	(2 * CUT_TEXT_MAX + 65536) /* non-update output on
				   top of one frame before a client is cut */
#define HANDSHAKE_S	30	/* connect to ServerInit, slow links too */
#define STALL_SECS	60	/* default -D: queued output not drained */
#define STALL_SECS_MAX	86400	/* -D: a day is already no backpressure */
#define LINGER_MS	2000	/* time to deliver a failure reason */
#define TILE		16	/* damage granularity in pixels: a changed
				   cell costs at most 15 pixels more each
				   way; also the block grid of plans */
#define BAND_PIXELS	(80 * 1024) /* a rectangle's pixels at most: the
				   queue is written out between rectangles,
				   so a viewer that keeps up holds about one
				   band (320 KiB raw), not a whole frame;
				   libvncclient's 16-bpp JPEG buffer takes
				   100 K pixels */
#define RECT_MAX_W	2048	/* Tight: viewers' row buffers (TigerVNC's
				   limit, libvncclient's gradient filter) */
#define OUT_FLUSH	65536	/* queued bytes that are worth a write() in
				   the middle of an update */
#define UPDATE_RECTS_MAX 65533	/* rectangles of one update (u16), with
				   room for the cursor and the size */
#define ZRLE_TILE	64	/* RFB 7.7.6: ZRLE tiles are 64x64 */
#define ZRLE_SLOT	(1 + ZRLE_TILE * ZRLE_TILE * 4) /* an encoded tile:
				   never bigger than raw, which we can pick */
#define ZRLE_PALETTE_MAX 127	/* palette RLE indexes have 7 bits */
#define ZRLE_PACKED_MAX	16	/* packed palettes: at most 4 bits each */
#define PAL_MAX		256	/* Tight palettes: one byte an index */
#define PAL_HASH	1024	/* > 2 * (PAL_MAX + 1): short probes */
#define ZOUT_CHUNK	65536	/* output room per deflate() call */
#define ZLEVEL_DEFAULT	1	/* -Z: speed before size, LAN and loopback */
#define ZLEVEL_STORE_MAX 5	/* up to here, data with more colours than
				   a palette holds goes in stored blocks */
#define ZLEVEL_SMALL	6	/* slow links: zlib's own default */
#define TIGHT_MIN_ZLIB	12	/* RFB 7.7.5: shorter data goes as it is */
#define OWN_PIXELS	4096	/* smaller rectangles go through a zlib
				   stream of the viewer's own that remembers
				   the last ones: a fresh stream's fixed cost
				   and empty dictionary are most of a small
				   rectangle (a clock, a cursor, a cell) */
#define OWN_WBITS	14	/* ... whose window is 16 KiB: the small
				   rectangles of the last frames */
#define OWN_MEMLEVEL	6	/* ... about 100 KiB each, made on first
				   use (a Tight viewer has up to three) */
#define OWN_LEVEL	6	/* ... deflating at least this hard: a small
				   rectangle costs microseconds at any level
				   (TigerVNC too deflates palettes at more
				   than the viewer's CompressLevel), and it
				   was 15% of a cell's bytes at level 3 */
#define TIGHT_LEN_MAX	0x3fffff /* a compact length has 22 bits */
#define SOLID_MIN	2048	/* pixels: a smaller one-colour area inside
				   a rectangle is not worth a header */
#define BLOCK_FEW	48	/* more colours in a 16x16 tile: a photograph,
				   kept apart from text and drawings */
#define TILE_PAL	8	/* colours of a tile kept for its rectangle's
				   palette; with more, its pixels are read */
#define JPEG_MIN_COLOURS 96	/* fewer: text or drawing, JPEG blurs it */
#define SMOOTH_STEP	4	/* rows sampled for the gradient filter */
#define SMOOTH_ERR	6	/* its mean error per channel: below, it pays */
#define REFRESH_MS	50	/* lossy tiles quiet this long are sent again
				   losslessly (TigerVNC waits as long) */
#define MOVING_MS	1000	/* a tile that changes again within this is
				   moving: JPEG pays there, as its lossless
				   copy may never be due */
#define SAME_CHANGE_MS	8	/* damage closer than this is one change
				   reported in parts */
#define STILL_LOSSY_KBIT 100000	/* a still area (the first picture, a page
				   that changed once) goes as JPEG first
				   only to a link slower than this: a faster
				   one carries it exactly about as soon, and
				   a blurred picture, then the exact one,
				   costs both */
#define CACHE_MIN	(16 << 20) /* encoded bytes kept for other viewers,
				   at least; 8 bytes a screen pixel else */
#define PLAN_HASH	1024	/* buckets of plans: a frame makes < 1000 */
#define SPARE_MAX	(8 << 20) /* memory of dropped encodings kept for
				   the next ones */
#define CHOICE_SLACK	1.15	/* within this of the cheapest, the viewer's
				   order decides */
#define LINK_GUESS	125e6	/* bytes/s until measured: a gigabit LAN;
				   loopback soon shows more, a slow link
				   less, half-way through a first frame */
#define LINK_WINDOW_MS	50	/* shorter windows say more of TCP's
				   acknowledgements and the clock */
#define EXPLORE_EVERY	32	/* choices, then the runner-up once ... */
#define EXPLORE_MAX	3	/* ... if it costs less than this times more */
#define HEXTILE_TILE	16	/* RFB 7.7.4: Hextile tiles are 16x16 */
#define HEXTILE_COLOURS	32	/* more in a 16x16 tile: send it raw */
#define VNC_PASSWD_MAX	8	/* RFB VNC auth uses 8 key bytes */
#define VNC_PASSWD_FILE_MAX 256	/* -w: a first line we read at all */
#define SASL_MECHLIST_MAX 300	/* gtk-vnc and libvncclient refuse longer */
#define SASL_MECHNAME_MAX 100	/* QEMU's bound; real names are <= 20 */
#define SASL_DATA_MAX	65536	/* SCRAM < 1 KiB, Kerberos tokens < 16 KiB */
#define SASL_MECHS_MAX	8	/* -m entries we can offer at all */
#define PLAIN_FIELD_MAX	1024	/* VeNCrypt Plain user and password */
#define TLS_RECORD_MAX	16384	/* plaintext bytes per TLS record */
/* TLS 1.2 is the floor (RFC 8996 deprecates 1.0 and 1.1); anonymous DH
 * exists only up to 1.2, and gtk-vnc offers ANON-DH alone, libvncclient
 * ANON-ECDH too (PROTOCOL 6.1) */
#define TLS_PRIO_X509	"NORMAL:-VERS-TLS1.1:-VERS-TLS1.0:-VERS-SSL3.0"
#define TLS_PRIO_ANON	"NORMAL:-VERS-TLS1.3:-VERS-TLS1.1:-VERS-TLS1.0:" \
			"-VERS-SSL3.0:+ANON-ECDH:+ANON-DH"
#define USER_MAX	255	/* identities we store, match and log */
#define DN_MAX		1024	/* client certificate subject, RFC 4514 */
#define DN_RDNS_MAX	32	/* RDNs in a subject or pattern; real ones
				   have fewer than ten */
#define PASSWD_LINE_MAX	1024	/* password file: a line with SHA-256 keys
				   is about 150 bytes plus the user name */
#define PASSWD_USERS_MAX 65536	/* records in a password file */
#define PASSWORD_MAX	1024	/* what -k reads */
#define PAM_WORKERS	4	/* PAM conversations at once; more fail at
				   once (a flood must not queue up logins) */
#define PAM_TIMEOUT_S	15	/* a conversation longer than this is killed
				   (modules that call out to the network) */
#define SCRAM_ITER_MAX	65536	/* Cyrus SCRAM clients refuse more */
#define SCRAM_ITER_DEFAULT 4096	/* RFC 7677's minimum; Cyrus's default */
#define ADHOC_USER	"vnc"	/* the ad-hoc mode's one-time user */
#define ADHOC_PASSWORD_LEN 23	/* 20 random characters in groups of 5 */
#define ADHOC_CERT_DAYS	30	/* its certificate outlives no process */
#define SALT_MAX	64	/* decoded SCRAM salt */
#define CURSOR_MAX	256	/* cursor side; X cursors are <= 64 */
#define ACL_RULES_MAX	1024	/* rules in one ACL file: checked per login */
#define ACL_LINE_MAX	1024	/* a rule with a long DN pattern fits */
#define FENCE_DATA_MAX	64	/* rfbproto: a fence's payload, at most */
#define FENCES_MAX	16	/* our fences unanswered at once: two per
				   update in flight, and a window is a few
				   updates; a viewer that lets more pile up
				   gets no more fences, not more memory */
#define FENCE_WAIT_MS	5000	/* a fence delivered and unanswered this
				   long: the viewer does not answer them, so
				   pace it by its queue instead */
#define FPS_DEFAULT	60	/* -o fps: server-paced updates a second */
#define FPS_MAX		1000
#define CWND_INITIAL	16384	/* bytes in flight at first and after idle:
				   a fast start on a decent link, quickly
				   cut if the link is slow */
#define CWND_MIN	4096	/* about TCP's three segments */
#define CWND_MAX	(4 << 20) /* Linux's largest default send buffer */
#define PACE_QUEUE	OUT_LOW	/* without fence answers: bytes the socket
				   may hold, like the request path's queue */
#define PACE_WAIT_MAX	1000	/* ms between looks at a full socket */
#define CLIP_MAX	(2 * CUT_TEXT_MAX) /* the clipboard as UTF-8: a full
				   Latin-1 one takes up to two bytes a letter */
#define EXT_CLIP_MAX	(CLIP_MAX + 65536) /* an Extended Clipboard
				   message: deflate's worst case is the text
				   plus 5 bytes per 16 KiB block */
/* WebSocket (wss://, -W): the HTTP request, the frames, served files */
#define WS_HEAD_MAX	8192	/* request line and headers (nginx's large
				   header buffer); browsers send < 2 KiB */
#define WS_HEADERS_MAX	64	/* header lines; Chromium sends about 20 */
#define WS_TARGET_MAX	1024	/* request target; noVNC's longest path is
				   under 60 bytes, its query under 200 */
#define WS_REQUESTS_MAX	100	/* files served on one kept-alive connection
				   (noVNC's whole page is about 70) */
#define WS_FILE_MAX	(1 << 20) /* a served file, read at once (noVNC's
				   largest is 120 KiB); it fits any output
				   queue (out_limit) */
#define WS_FRAME_MAX	(1 << 24) /* a client's data frame: payload is
				   streamed, but no viewer sends more than a
				   2 MiB clipboard in one; 2^63 is an attack */
#define WS_CTL_MAX	125	/* RFC 6455 5.5: control frame payloads */
#define WS_KEY_LEN	24	/* Sec-WebSocket-Key: base64 of 16 bytes */

#define STR(x)		#x
#define XSTR(x)		STR(x)
#ifndef nitems			/* BSD <sys/param.h> has it */
#define nitems(a)	(sizeof (a) / sizeof (a)[0])
#endif

#define RFB_GREETING	"RFB 003.008\n"

/* RFB numbers (rfbproto.rst) */
enum {
	SEC_INVALID = 0, SEC_NONE = 1, SEC_VNC = 2, SEC_VENCRYPT = 19,
	SEC_SASL = 20,
};
enum {
	MSG_SET_PIXEL_FORMAT = 0, MSG_SET_ENCODINGS = 2, MSG_UPDATE_REQUEST = 3,
	MSG_KEY = 4, MSG_POINTER = 5, MSG_CUT_TEXT = 6, MSG_ENABLE_CU = 150,
	MSG_FENCE = 248, MSG_SET_DESKTOP_SIZE = 251,
	MSG_QEMU = 255,
};
enum {
	SMSG_UPDATE = 0, SMSG_CUT_TEXT = 3, SMSG_END_CU = 150, SMSG_FENCE = 248,
};
/* Fence flags (rfbproto ClientFence) */
#define FENCE_BLOCK_BEFORE	0x1u
#define FENCE_BLOCK_AFTER	0x2u
#define FENCE_SYNC_NEXT		0x4u
#define FENCE_KNOWN		0x7u
#define FENCE_REQUEST		0x80000000u
enum {
	ENC_RAW = 0, ENC_HEXTILE = 5, ENC_TIGHT = 7, ENC_ZRLE = 16,
	ENC_COMPRESS_0 = -256, ENC_COMPRESS_9 = -247,
	ENC_QUALITY_0 = -32, ENC_QUALITY_9 = -23,
	ENC_TIGHT_PNG = -260,
	ENC_CURSOR = -239,
	ENC_LAST_RECT = -224,
	ENC_DESKTOP_SIZE = -223,
	ENC_EXT_DESKTOP_SIZE = -308,
	ENC_FENCE = -312, ENC_CONT_UPDATES = -313,
	ENC_QEMU_KEY = -258,
	ENC_EXT_CLIPBOARD = -1063131698,	/* 0xC0A1E5CE */
};
/* Extended Clipboard flags (rfbproto): formats, then actions */
#define CLIP_TEXT	0x00000001u
#define CLIP_FORMATS	0x0000ffffu
#define CLIP_CAPS	0x01000000u
#define CLIP_REQUEST	0x02000000u
#define CLIP_PEEK	0x04000000u
#define CLIP_NOTIFY	0x08000000u
#define CLIP_PROVIDE	0x10000000u
#define CLIP_ACTIONS	0xff000000u

/* ---------------------------------------------------------------------
 * Types.
 * ------------------------------------------------------------------- */

enum state {
	ST_VERSION,		/* waiting for the client's ProtocolVersion */
	ST_SECURITY,		/* waiting for the chosen security type */
	ST_VENCRYPT,		/* VeNCrypt version and subtype */
	ST_TLS,			/* TLS handshake */
	ST_AUTH,		/* a security type's own exchange */
	ST_SASL,		/* SASL mechanism and steps */
	ST_INIT,		/* waiting for ClientInit */
	ST_NORMAL,		/* client messages */
	ST_CLOSING,		/* flushing a failure, then close */
	ST_HTTP,		/* wss: the HTTP request (upgrade, or a file) */
};

static const char *const state_name[] = {
	"version", "security", "vencrypt", "tls", "auth", "sasl", "init",
	"normal", "closing", "http",
};

/* TLS_WSS: the channel is the WebSocket's own TLS (-W), nothing inside */
enum tlskind { TLS_NO, TLS_ANON, TLS_X509, TLS_WSS };

struct buf {
	uint8_t *data;
	size_t off, len, cap;	/* valid bytes are data[off..len) */
};

/*
 * A bounds-checked reader over buffered wire bytes; errors are sticky, so
 * a handler reads every field and checks once (tinyssh's packetparser).
 * The bytes are the client's own input buffer: a handler may wipe what
 * it read (passwords).
 */
struct rd {
	uint8_t *p;
	size_t n;
	int err;
};

struct pixfmt {
	uint8_t bpp, depth, bigendian, truecolour;
	uint16_t max[3];
	uint8_t shift[3];
};

struct rect {
	int x, y, w, h;
};

/* A damage tile of a client's map: news for it, and how it was sent. */
enum {
	T_CHANGED = 1,		/* changed since sent */
	T_REFRESH = 2,		/* sent lossy, quiet since: send it exactly */
	T_LOSSY = 4,		/* what the viewer shows is JPEG's */
};

/* What a part of a rectangle is made of. */
enum { C_SOLID, C_MONO, C_INDEXED, C_FULL, NCLASSES, C_UNKNOWN = NCLASSES };
/* Ways to send it: encodings, and Tight with JPEG apart. */
enum { M_RAW, M_HEXTILE, M_ZRLE, M_TIGHT, M_JPEG, NMODES };
/* What was sent, for the log: encodings and Tight's subencodings. */
enum {
	K_RAW, K_HEXTILE, K_ZRLE, K_FILL, K_MONO, K_INDEXED, K_FULL,
	K_GRADIENT, K_JPEG, NKINDS,
};
enum { ZT_SOLID, ZT_PACKED, ZT_PRLE, ZT_RLE, ZT_RAW, ZT_KINDS };
/* plan_make()'s blocks */
/* collect_rects()'s tiles, and the rectangles it makes of them */
enum { G_SOLID = 1, G_FEW = 2, G_MANY = 4 };
enum { R_ANY, R_SOLID, R_FEW, R_MANY };

/* Everything an encoding of a sub depends on besides the pixels. */
struct variant {
	uint8_t mode;		/* M_* */
	uint8_t hi;		/* the "small" level of two */
	uint8_t level;		/* zlib level */
	uint8_t store;		/* many-coloured data in stored blocks */
	uint8_t quality;	/* JPEG: 0-9 */
	uint8_t own;		/* the viewer's own zlib stream (not kept) */
	uint8_t nograd;		/* Tight without the gradient filter */
	struct pixfmt pf;	/* not for JPEG: viewers convert */
};

/* A sub as one variant made it: the rectangle as sent, header included. */
struct encoded {
	struct encoded *next;
	struct variant v;
	struct buf b;		/* its bytes: b.data[0..b.len) */
	uint8_t kind;		/* K_* */
	unsigned long ztiles[ZT_KINDS];	/* ZRLE: its tiles by kind */
};

/* A part of a rectangle, on the tile grid, and what it is made of. */
struct sub {
	struct rect r;
	uint8_t cls;		/* C_* */
	uint8_t smooth;		/* the gradient filter pays; 2: not known */
	uint16_t ncol;		/* colours, PAL_MAX + 1 for more */
	uint32_t colour;	/* C_SOLID: that one (source XRGB) */
	uint32_t *pal;		/* C_MONO, C_INDEXED: first seen first */
	struct encoded *enc;	/* made of it so far */
	uint32_t pick_key;	/* choose()'s last answer, for viewers whose */
	struct variant pick;	/* ... choice_key() is this (0: none) */
};

/*
 * A damaged rectangle, analysed, with what was made of it: shared by
 * every viewer that gets the same rectangle of the same content.
 */
struct plan {
	struct plan *next;	/* hash chain */
	struct rect r;
	unsigned long gen;	/* newest damage stamp under r when made */
	unsigned long used;	/* the update (epoch) that last used it */
	int deep;		/* analysed, else one sub of unknown class */
	size_t bytes;		/* memory it holds */
	int nsub;
	struct sub sub[];
};

/* libjpeg's error exit and output, ours (jpeg_rect()) */
struct jpeg_err {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
};

struct jpeg_dst {
	struct jpeg_destination_mgr pub;
	struct buf *b;
};

/* The encoders' working memory and what they keep, for all clients. */
struct encscratch {
	uint32_t px[ZRLE_TILE * ZRLE_TILE];	/* a tile in client values;
					   a row of RECT_MAX_W fits too */
	uint8_t zslot[ZRLE_SLOT];	/* a ZRLE tile before deflate */
	unsigned long gen;		/* damage stamps, counting up */
	unsigned long *tgen;		/* each damage tile's last stamp */
	long long *tms;			/* ... and when (refresh) */
	uint8_t *tmoving;		/* ... and changed shortly before */
	/* plans of rectangles, by position */
	struct plan *plans[PLAN_HASH];
	size_t cache_bytes;
	int nplans;
	unsigned long epoch;		/* updates made */
	unsigned long nchoices;		/* choose() with a choice */
	/* what each damage tile is made of, made when first asked */
	unsigned long *tagen;		/* tgen + 1 when analysed */
	uint8_t *tncol;			/* colours, BLOCK_FEW + 1: many */
	uint32_t *tpal;			/* the first TILE_PAL of them */
	/* a palette: colours in order, and a hash to find them */
	uint32_t pal[PAL_MAX + 1];
	int npal;
	uint32_t key[PAL_HASH], stamp[PAL_HASH];
	uint16_t idx[PAL_HASH];
	uint32_t now;			/* stamp of this palette */
	/* compressors, reset for every rectangle */
	z_stream *zlib, *zraw;
	struct jpeg_compress_struct *jpeg;
	struct jpeg_err *jerr;
	struct jpeg_dst jdst;
	struct buf zbuf, jbuf, tdata;	/* their output; Tight's input */
	struct buf obuf;		/* a small rectangle for one viewer */
	/* encodings no longer wanted, their memory reused: freeing and
	 * growing it every frame made the heap shrink and fault again */
	struct encoded *spare;
	size_t spare_bytes;
	uint16_t grad[2 * 3 * RECT_MAX_W];	/* gradient filter rows */
#ifndef JCS_EXTENSIONS
	uint8_t jrows[16 * 3 * RECT_MAX_W];	/* RGB rows for libjpeg */
#endif
	/* what encoders did, over what was guessed (choose()) */
	float fbytes[NMODES][2][NCLASSES + 1], fns[NMODES][2][NCLASSES + 1];
};

/* A fence: what a SyncNext request's answer waits with. */
struct fence {
	uint32_t flags;
	uint8_t len;
	uint8_t data[FENCE_DATA_MAX];
};

/* One of our fences (a ping), unanswered. */
struct ping {
	uint32_t seq;		/* in its payload */
	long long t;		/* when queued */
	uint64_t pos;		/* stream position just after it */
	uint32_t ahead;		/* bytes beyond the window queued before it */
	uint8_t congested;	/* the window was full when it was sent */
};

/*
 * Pacing of a ContinuousUpdates viewer (see the Pacing section): what
 * its fence answers say about the link, and the window of bytes we let
 * be in flight.  TigerVNC's Congestion.cxx (TCP Vegas on fence round
 * trips) is the model.
 */
struct pacing {
	struct ping ping[FENCES_MAX];	/* a ring, oldest at head */
	int head, n;
	uint32_t seq;		/* the next ping's number */
	uint64_t acked;		/* stream position of the last answer */
	long long t_acked;	/* when it came */
	uint64_t pos_seen;	/* stream position last noted ... */
	long long t_sent;	/* ... and when it last grew */
	int base_rtt;		/* ms: lowest round trip seen, -1: none */
	uint32_t cwnd;		/* bytes we let be in flight */
	int slow_start;
	int samples, min_rtt, min_cong_rtt;	/* since the last change */
	long long t_adjust;	/* the window's last change */
	long long fence_due;	/* look at the oldest ping then, or 0 */
	int sockq;		/* the socket's unsent and unacknowledged
				   bytes at the last look, -1: unknown */
	int qwait;		/* ms until the next look at a full socket */
	unsigned long updates, pings, answers;	/* for the log */
};

struct server;
struct client;
struct sectype;
struct ws;

/* A password check that waits for PAM (HAVE_PAM). */
struct pamreq {
	uint32_t id;
	unsigned deferred : 1;	/* GNU SASL was told yes; PAM decides */
	unsigned waiting : 1;	/* the broker has it */
	char user[USER_MAX + 1];
	char pass[PASSWORD_MAX + 1];	/* until it goes to the broker */
};

/* A certificate subject, or a dn: pattern: RDN by RDN. */
struct dnparts {
	char buf[DN_MAX + 1];	/* "TYPE=value" strings, NUL after each */
	int n;
};

/* Returns bytes consumed; 0 after raising c->need above what is there. */
typedef size_t (*handler_fn)(struct client *, uint8_t *, size_t);

struct client {
	struct server *srv;
	struct client *next;
	int fd, wfd;		/* read and write ends (differ with -i pipes) */
	int pfd, pfdw;		/* indexes in this turn's pollfd set, or -1 */
	unsigned authed : 1;	/* passed authentication and the ACL */
	enum state state;
	handler_fn handler;
	size_t need;
	struct buf in, out;
	int dead;
	char why[256];		/* close reason for the log */
	long long t_start, deadline, last_out;
	long long gate_until;	/* not read before then: its turn to log in
				   (throttling) or to hash a password */
	unsigned gate_start : 1;	/* ... then auth_begin() */
	unsigned hash_paid : 1;	/* this login's hashing is booked */
	struct pamreq *pam;	/* a PAM check under way, or NULL */

	int minor;		/* RFB 3.minor in use: 3, 7 or 8 */
	const struct sectype *sec;
	char peer[INET6_ADDRSTRLEN + 8];	/* "1.2.3.4:5" or "unix" */
	char addr[INET6_ADDRSTRLEN];		/* for ACL "from" rules */
	char akey[INET6_ADDRSTRLEN + 4];	/* throttling: IPv6 as /64 */
	int is_unix;
	char user[USER_MAX + 1];	/* authenticated identity, "" if none */
	char mech[SASL_MECHNAME_MAX + 1];	/* SASL mechanism, "" if none */
	char dn[DN_MAX + 1];	/* verified client certificate subject, for
				   the log (RFC 4514, as GnuTLS writes it) */
	struct dnparts dnp;	/* ... RDN by RDN, for dn: rules */
	uint8_t challenge[16];

	/* TLS */
	gnutls_session_t tls;
	unsigned tls_up : 1;	/* handshake done: I/O goes through TLS */
	unsigned tls_wdir : 1;	/* handshake waits to write */
	unsigned tls_wpending : 1;	/* a record send must be resumed */
	size_t tls_rx;		/* bytes read through TLS (0: it said nothing
				   after the handshake) */
	int ssf;		/* TLS cipher key bits */
	struct ws *ws;		/* wss: the WebSocket layer, else NULL */

	/* SASL */
	Gsasl_session *sasl;
	char mechlist[SASL_MECHLIST_MAX + 1];
	unsigned unknown_user : 1;
	unsigned plus_only : 1;	/* named SCRAM-X, only SCRAM-X-PLUS offered */
	unsigned view_only : 1;	/* ACL "view": input is dropped */
	unsigned view_logged : 1;
	unsigned by_passwd : 1;	/* the password file vouched for user */
	unsigned sent_input : 1;	/* keys or buttons reached the source */

	/* initialised clients */
	struct pixfmt pf;
	int bytes_pp, native;
	uint32_t tr[3][256];	/* 8-bit channel -> shifted client value */
	unsigned enc_desktop_size : 1, enc_ext_desktop_size : 1;
	unsigned enc_cursor : 1;
	unsigned enc_last_rect : 1;	/* may end an update with LastRect */
	unsigned tight_nograd : 1;	/* noVNC: no gradient filter */
	unsigned enc_qemu_key : 1;	/* QEMU extended key events */
	unsigned enc_ext_clip : 1;	/* Extended Clipboard (UTF-8) */
	uint32_t clip_flags;	/* its caps: what it takes */
	uint32_t clip_text_max;	/* ... and the most text unasked */
	unsigned cursor_sent;	/* srv->cursor_serial last sent */
	unsigned want_update : 1;	/* a FramebufferUpdateRequest waits */
	unsigned size_changed : 1;	/* tell the new size, alone */
	unsigned size_announce : 1;	/* ExtendedDesktopSize, first update */
	uint8_t size_reason, size_status;	/* ExtendedDesktopSize x, y */
	uint8_t *dirty;		/* tile map, dtw * dth, or NULL */
	int dtw, dth;		/* its grid: the server's after every resize
				   for a client that follows it, else the
				   map is gone (finding 1 of the 2026 audit:
				   a map of the old size written at the new
				   one overflowed the heap) */
	int8_t rank[NMODES];	/* place in the viewer's SetEncodings, -1:
				   not listed; JPEG as Tight */
	int zasked;		/* the viewer's CompressLevel + 1, 0: ours */
	int quality;		/* its JPEG quality level 0-9, -1: none */
	unsigned zrle_started : 1;	/* its ZRLE stream had its header */
	unsigned own_stale : 1;	/* shared ZRLE went out since own[0]'s last */
	z_stream *own[4];	/* small rectangles' streams: ZRLE (raw
				   deflate) and Tight's streams 1-3 */
	uint8_t own_level[4];
	size_t lk_left;		/* our queue after the last write: the kernel
				   took no more */
	long long refresh_due;	/* lossy tiles to check then, 0: none */
	/* the link (link_sample(); bytes written: wrote) */
	long long lk_t0;	/* start of a measuring window, 0: none */
	uint64_t lk_done;	/* bytes delivered when it started */
	double rate;		/* bytes/s, 0: not measured yet */
	/* what it was sent, for the log */
	unsigned long kind_rects[NKINDS], shared, owned;
	uint64_t kind_bytes[NKINDS];
	unsigned long ztiles[ZT_KINDS];

	/* ContinuousUpdates and Fence (TigerVNC, noVNC) */
	unsigned enc_fence : 1, enc_cu : 1;	/* in the viewer's list */
	unsigned fence_told : 1;	/* our first ServerFence went out: it
					   reads fences from now on */
	unsigned cu_told : 1;		/* EndOfContinuousUpdates went out */
	unsigned cu_on : 1;		/* we pace its updates, in cu_area */
	unsigned fence_deaf : 1;	/* our fences go unanswered */
	unsigned sync_wait : 1;		/* a SyncNext fence's answer waits
					   for the next message */
	struct rect cu_area;		/* as asked; clipped when used */
	struct rect req_area;		/* non-incremental request while
					   cu_on: sent with the area */
	struct fence sync;		/* that answer */
	uint64_t wrote;			/* bytes written to the transport */
	struct rect full_area;		/* the last non-incremental request's
					   area, answered in full ... */
	uint64_t full_end;		/* ... by bytes up to here (0: none,
					   or the picture changed format) */
	unsigned full_asked : 1;	/* ... by the next update */
	long long next_frame;		/* -o fps: no update before then */
	long long pace_at;		/* may update: 0 now, LLONG_MAX after
					   an event, else at that time */
	struct pacing pc;
};

struct listener {
	int fd;
	int is_unix;
	int is_ws;		/* -W: wss:// */
	char name[INET6_ADDRSTRLEN + 16];
};

struct sectype {
	const char *name;	/* -s spelling */
	int type;		/* RFB security type */
	int subtype;		/* VeNCrypt subtype, 0 for plain RFB */
	enum tlskind tls;
	void (*start)(struct client *);	/* the exchange, inside TLS if any */
};

enum acl_action { ACL_ALLOW, ACL_DENY, ACL_VIEW };

struct acl_rule {
	enum acl_action action;
	int dn;			/* pattern matches the certificate subject */
	char *pattern;		/* fnmatch(3) glob */
	struct dnparts *dnpat;	/* dn: the pattern's RDNs */
	char *from;		/* glob on the peer address, or NULL */
	int line;
};

struct acl {
	struct acl_rule *rule;
	int n, cap;
	enum acl_action policy;	/* when no rule matches */
	char path[PATH_MAX];
};

/* One password-file record: SCRAM secrets for one user and hash. */
struct cred {
	char user[USER_MAX + 1];
	Gsasl_hash hash;
	unsigned iter;
	uint8_t salt[SALT_MAX];
	size_t saltlen;
	char salt64[2 * SALT_MAX], stored64[64], server64[64];
	uint8_t stored[GSASL_HASH_MAX_SIZE], server[GSASL_HASH_MAX_SIZE];
};

/* ---------------------------------------------------------------------
 * Security types, and the handlers the tables name.
 * ------------------------------------------------------------------- */

static void auth_none(struct client *);
static void auth_vnc(struct client *);
static void auth_sasl(struct client *);
static void auth_plain(struct client *);
static void cl_fail(struct client *, const char *, ...);
static void cl_reject(struct client *, const char *);
static void cl_expect(struct client *, handler_fn, size_t);
static void cl_linger(struct client *, const char *);
static void cl_flush(struct client *);
static void start_init(struct client *);
static const struct sectype *const *cl_sectypes(const struct client *, int *);
static void vencrypt_start(struct client *);
static void auth_begin(struct client *);
static void auth_decide(struct client *, const char *, int, const char *);
static void cl_process(struct client *);
static int set_nonblock(int);
#ifdef HAVE_PAM
struct pam_msg;
static void pam_answer(struct client *, const struct pam_msg *);
#endif
static int mech_offered(const char *, const char *, size_t);

/*
 * Every security type: its -s name, its numbers, its transport and the
 * exchange it starts.  Adding one means a row here, its handlers in the
 * Authentication section, and a line in the man page and README; -s, -h,
 * -V and the logs take its name from this row.
 */
static const struct sectype sectypes[] = {
	/* VeNCrypt numbers as QEMU, gtk-vnc and libvncclient use them
	 * (rfbproto.rst has 263 and 264 swapped) */
	{ "x509sasl", SEC_VENCRYPT, 263, TLS_X509, auth_sasl },
	{ "tlssasl", SEC_VENCRYPT, 264, TLS_ANON, auth_sasl },
	{ "sasl", SEC_SASL, 0, TLS_NO, auth_sasl },
	{ "x509plain", SEC_VENCRYPT, 262, TLS_X509, auth_plain },
	{ "tlsplain", SEC_VENCRYPT, 259, TLS_ANON, auth_plain },
	{ "x509vnc", SEC_VENCRYPT, 261, TLS_X509, auth_vnc },
	{ "tlsvnc", SEC_VENCRYPT, 258, TLS_ANON, auth_vnc },
	{ "x509none", SEC_VENCRYPT, 260, TLS_X509, auth_none },
	{ "tlsnone", SEC_VENCRYPT, 257, TLS_ANON, auth_none },
	{ "vnc", SEC_VNC, 0, TLS_NO, auth_vnc },
	{ "none", SEC_NONE, 0, TLS_NO, auth_none },
	/* -W only: the browser's TLS is the channel; noVNC can do VeNCrypt
	 * Plain (256) and nothing stronger, and no inner TLS (PROTOCOL 8) */
	{ "wss-plain", SEC_VENCRYPT, 256, TLS_WSS, auth_plain },
	{ "wss-sasl", SEC_SASL, 0, TLS_WSS, auth_sasl },
	{ "wss-vnc", SEC_VNC, 0, TLS_WSS, auth_vnc },
	{ "wss-none", SEC_NONE, 0, TLS_WSS, auth_none },
};

static const struct sectype *
sectype_by_name(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < nitems(sectypes); i++)
		if (strlen(sectypes[i].name) == len &&
		    strncmp(sectypes[i].name, name, len) == 0)
			return &sectypes[i];
	return NULL;
}

/* The -s names of every security type (VeNCrypt subtypes only: vc). */
static const char *
sectype_names(char *buf, size_t size, const char *sep, int vc)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < nitems(sectypes); i++)
		if (!vc || sectypes[i].type == SEC_VENCRYPT)
			off += (size_t)snprintf(buf + off, off < size ? size -
			    off : 0, "%s%s", off ? sep : "", sectypes[i].name);
	return buf;
}

struct server {
	/* configuration */
	struct listener lst[MAX_LISTENERS];
	int nlst;
	const char *unix_path;
	const struct sectype *sec_tcp[nitems(sectypes)];
	const struct sectype *sec_unix[nitems(sectypes)];
	const struct sectype *sec_ws[nitems(sectypes)];
	int nsec_tcp, nsec_unix, nsec_ws;
	int www_fd;		/* -F: the directory served on -W, or -1 */
	const char *www_dir;
	const char *origins;	/* -O: Origins allowed on -W; NULL: the
				   page's own (https://HOST), "*": any */
	struct des_ctx vnc_des;
	int have_vnc_key;
	char name[NAME_MAX_LEN + 1];
	int max_clients, verbose, once, use_syslog;
	int preauth_max, preauth_per_addr, handshake_s, fail_delay_cap;
	int hash_rate;		/* -o hash-rate, 0: unbounded */

	/* TLS */
	gnutls_certificate_credentials_t x509;
	gnutls_anon_server_credentials_t anon;
	gnutls_priority_t prio_x509, prio_anon;
	int verify_clients;	/* -T: client certificates required */
	const char *cert_path;	/* -C, for the ad-hoc mode's hints */

	/* SASL and credentials */
	Gsasl *gsasl;
	const char *mechs[SASL_MECHS_MAX];
	int nmechs;
	const char *sasl_host;	/* -H: host name Kerberos clients use */
	const char *passwd_path;
	const char *pam_service;	/* -P pam:SERVICE */
	int pam_fd;		/* the PAM broker, or -1 */
	pid_t pam_pid;
	uint32_t pam_seq;
	int adhoc;		/* the ad-hoc mode's user is the only one */
	char adhoc_pw[ADHOC_PASSWORD_LEN + 1];	/* printed once, then wiped */
	gnutls_x509_crt_t adhoc_crt;	/* its certificate, if it made one */
	struct cred *creds;
	size_t ncreds;
	uint8_t fake_key[SHA256_DIGEST_SIZE];	/* unknown users' salts */
	struct acl *acl;	/* NULL: every authenticated user may */
	const char *acl_path;

	/* per address (IPv6: /64): failed logins and password hashing */
	struct addr_rec {
		char key[INET6_ADDRSTRLEN + 4];
		unsigned fails;		/* forgotten after FAIL_FORGET_MS */
		long long last_fail, last_seen;
		long long next_ok;	/* its next attempt may start then */
		long long hash_tat;	/* hashing booked until (us) */
	} addrs[ADDR_RECS];
	int naddrs;
	long long hash_tat;	/* all peers' hashing booked until (us) */
	unsigned max_iter;	/* dearest PBKDF2 a password check costs */

	/* state */
	struct fb *fb;
	struct fb_host host;
	struct fb_frame frame;
	int tw, th;		/* tile grid */
	struct rect *rects;	/* scratch: tw * th */
	uint8_t *rkind;		/* ... what each is made of (R_*) */
	struct plan **plans;	/* ... and its plan */
	uint8_t *kgrid;		/* scratch: tw * th, tiles by kind (G_*) */
	int *open_a, *open_b;	/* scratch: tw each */
	int zlevel;		/* -Z: ZRLE's zlib level */
	int link_kbit;		/* -o link-kbit: the most to assume, 0: none */
	int fps;		/* -o fps: server-paced updates a second */
	uint8_t *cu_hold;	/* scratch: tiles held back outside the
				   ContinuousUpdates area, cu_hold_n */
	size_t cu_hold_n;
	int stall_ms;		/* -D: drop a viewer that reads nothing */
	struct encscratch enc;	/* encoders' scratch, one client at a time */
	struct client *clients;
	int nclients, served;
	int polled_lst;		/* this turn's pollfd set has the listeners */
	long long accept_paused;	/* out of descriptors: until then */
	int polled_fb;		/* ... the source's descriptor at this index */
	int polled_pam;		/* ... the PAM broker's */
	long long grab_due;
	uint32_t *cursor;	/* ARGB, cursor_w * cursor_h */
	int cursor_w, cursor_h, cursor_x, cursor_y;
	unsigned cursor_serial;	/* 0: the source has no cursor */
	int cursor_drawn;	/* what we last told the source */
	char *clip;		/* the source's clipboard, UTF-8, LF */
	size_t clip_len;
	uint8_t *clip_z;	/* ... as an Extended Clipboard provide */
	size_t clip_zlen;	/* payload, made on first request */
};

/* ---------------------------------------------------------------------
 * Signals: flags only.
 * ------------------------------------------------------------------- */

static volatile sig_atomic_t got_stop, got_hup;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_stop = 1;
}

/* ---------------------------------------------------------------------
 * Logging.  Events go to LOG_DAEMON, decisions to LOG_AUTH.
 * ------------------------------------------------------------------- */

static void
vlogx(const struct server *s, int prio, const char *fmt, va_list ap)
{
	if (LOG_PRI(prio) == LOG_DEBUG && !s->verbose)
		return;
	if (s->use_syslog) {
		vsyslog(prio, fmt, ap);
		return;
	}
	fputs("vncsasl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static void
logx(const struct server *s, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlogx(s, prio, fmt, ap);
	va_end(ap);
}

#if defined(__GNUC__)
static void die(int, const char *, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
#endif

/* A start-up error: the message, and exit (2: the operator's, 1: the
 * system's).  Never after serve() has begun. */
static void
die(int status, const char *fmt, ...)
{
	va_list ap;

	fputs("vncsasl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* Log text from the network: printable ASCII only, bounded. */
static const char *
safe(const char *in, char *out, size_t outlen)
{
	size_t o = 0;

	if (in == NULL || *in == '\0')
		return "-";
	for (; *in && o + 5 < outlen; in++) {
		unsigned char ch = (unsigned char)*in;

		if (ch > 0x20 && ch < 0x7f && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", ch);
	}
	out[o] = '\0';
	return out;
}

/* ---------------------------------------------------------------------
 * Buffers, wire readers and writers.
 * ------------------------------------------------------------------- */

static int
buf_reserve(struct buf *b, size_t more)
{
	size_t want, cap;
	uint8_t *p;

	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (b->cap - b->len >= more)
		return 0;
	if (b->off > 0) {	/* compact before growing */
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		if (b->cap - b->len >= more)
			return 0;
	}
	want = b->len + more;
	for (cap = b->cap ? b->cap : 4096; cap < want; cap *= 2)
		;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

static size_t
buf_used(const struct buf *b)
{
	return b->len - b->off;
}

static uint8_t
rd_u8(struct rd *r)
{
	if (r->err || r->n < 1) {
		r->err = 1;
		return 0;
	}
	r->n--;
	return *r->p++;
}

static uint16_t
rd_u16(struct rd *r)
{
	uint16_t v = (uint16_t)(rd_u8(r) << 8);

	return v | rd_u8(r);
}

static uint32_t
rd_u32(struct rd *r)
{
	uint32_t v = (uint32_t)rd_u16(r) << 16;

	return v | rd_u16(r);
}

static uint8_t *
rd_bytes(struct rd *r, size_t n)
{
	uint8_t *p = r->p;

	if (r->err || r->n < n) {
		r->err = 1;
		return NULL;
	}
	r->p += n;
	r->n -= n;
	return p;
}

/* Exactly these n bytes (a literal in the protocol), else an error. */
static void
rd_lit(struct rd *r, const char *lit, size_t n)
{
	const uint8_t *p = rd_bytes(r, n);

	if (p != NULL && memcmp(p, lit, n) != 0)
		r->err = 1;
}

/* n ASCII decimal digits. */
static unsigned
rd_dec(struct rd *r, size_t n)
{
	const uint8_t *p = rd_bytes(r, n);
	unsigned v = 0;
	size_t i;

	for (i = 0; p != NULL && i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			r->err = 1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	return v;
}

static struct rd
rd_of(uint8_t *p, size_t n)
{
	struct rd r;

	r.p = p;
	r.n = n;
	r.err = 0;
	return r;
}

/* What a handler consumed of the n bytes it was given. */
static size_t
rd_used(const struct rd *r, size_t n)
{
	return n - r->n;
}

/*
 * Output.  Queueing past the client's bound is a failure of that client
 * (CVE-2017-15124 was QEMU queueing without one).
 */
static size_t
out_limit(const struct client *c)
{
	const struct server *s = c->srv;

	return (size_t)s->frame.width * s->frame.height * 4 + OUT_LOW +
	    OUT_SLACK;
}

static uint8_t *
wr_space(struct client *c, size_t n)
{
	uint8_t *p;

	if (c->dead)
		return NULL;
	if (buf_used(&c->out) + n > out_limit(c)) {
		cl_fail(c, "output queue over its limit (%zu bytes)",
		    buf_used(&c->out) + n);
		return NULL;
	}
	if (buf_reserve(&c->out, n) < 0) {
		cl_fail(c, "out of memory for output");
		return NULL;
	}
	p = c->out.data + c->out.len;
	c->out.len += n;
	return p;
}

static void
wr_bytes(struct client *c, const void *data, size_t n)
{
	uint8_t *p = wr_space(c, n);

	if (p != NULL && n > 0)
		memcpy(p, data, n);
}

static void
wr_u8(struct client *c, uint8_t v)
{
	wr_bytes(c, &v, 1);
}

static void
wr_u16(struct client *c, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	wr_bytes(c, b, 2);
}

static void
wr_u32(struct client *c, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	wr_bytes(c, b, 4);
}

static void
wr_string(struct client *c, const char *s)
{
	size_t n = strlen(s);

	wr_u32(c, (uint32_t)n);
	wr_bytes(c, s, n);
}

/* ---------------------------------------------------------------------
 * Text: comma lists (options, mechanism lists) and lines of files.
 * ------------------------------------------------------------------- */

/* The next item of a comma-separated list: 1 with its start and length
 * (",," gives an empty item), 0 at the end. */
static int
list_next(const char **p, const char **item, size_t *len)
{
	if (**p == '\0')
		return 0;
	*item = *p;
	*len = strcspn(*p, ",");
	*p += *len;
	if (**p == ',')
		(*p)++;
	return 1;
}

/*
 * Open a configuration file (ACL, password file, VNC password) for
 * reading, refusing what is not a regular file, what someone other than
 * root or the user running the server owns, and what group or others may
 * use in the ways `forbidden` names (who may write the rules may grant
 * themselves the screen; who may read the keys may guess offline).
 * OpenBSD doas and ssh do the same.  NULL with the reason in err.
 */
static FILE *
conf_open(const char *path, mode_t forbidden, const char *fix, char *err,
    size_t errlen)
{
	struct stat st;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode))
		snprintf(err, errlen, "%s: not a regular file", path);
	else if (st.st_uid != 0 && st.st_uid != geteuid())
		snprintf(err, errlen, "%s: owned by uid %lu, neither root nor "
		    "the user running vncsasl (uid %lu)", path,
		    (unsigned long)st.st_uid, (unsigned long)geteuid());
	else if (st.st_mode & forbidden)
		snprintf(err, errlen, "%s: group or others may %s it; %s", path,
		    forbidden & (S_IRGRP | S_IROTH) ? "access" : "write", fix);
	else
		return f;
	fclose(f);
	return NULL;
}

/*
 * The next line of a configuration file without its LF or CRLF: 1, or 0
 * at the end, or -1 with "FILE:LINE: reason" in err.  size includes room
 * for the line end and the NUL.
 */
static int
line_next(FILE *f, char *line, size_t size, const char *path, int *lineno,
    char *err, size_t errlen)
{
	size_t len;

	if (fgets(line, (int)size, f) == NULL) {
		if (!ferror(f))
			return 0;
		snprintf(err, errlen, "%s: read error", path);
		return -1;
	}
	(*lineno)++;
	len = strlen(line);
	if (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	else if (!feof(f)) {
		snprintf(err, errlen, "%s:%d: line longer than %zu bytes", path,
		    *lineno, size - 2);
		return -1;
	}
	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	return 1;
}

/* ---------------------------------------------------------------------
 * Clients: what a handler waits for, and how a client ends.
 * A failing client is only marked dead (cl_fail) or left to deliver its
 * last words (cl_linger); the loop reaps it after the pass.
 * ------------------------------------------------------------------- */

/* Not to be read now: waiting its turn (throttling, hashing) or PAM. */
static int
cl_held(const struct client *c)
{
	return c->gate_until != 0 || (c->pam != NULL && c->pam->waiting);
}

static void
cl_expect(struct client *c, handler_fn fn, size_t n)
{
	c->handler = fn;
	c->need = n;
}

static void
cl_vclose(struct client *c, const char *fmt, va_list ap)
{
	if (c->dead)
		return;
	c->dead = 1;
	vsnprintf(c->why, sizeof c->why, fmt, ap);
}

/* Close now, logging why; nothing more is sent. */
static void
cl_fail(struct client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cl_vclose(c, fmt, ap);
	va_end(ap);
}

/* Deliver what is queued, then close (failure reasons). */
static void
cl_linger(struct client *c, const char *why)
{
	snprintf(c->why, sizeof c->why, "%.*s", (int)sizeof c->why - 1, why);
	c->state = ST_CLOSING;
	c->deadline = mono_ms() + LINGER_MS;
}

static void
wr_failure_reason(struct client *c, const char *reason)
{
	if (c->minor >= 8)
		wr_string(c, reason);
}

/* SecurityResult failed, version-correct, then close. */
static void
cl_reject(struct client *c, const char *why)
{
	wr_u32(c, 1);
	wr_failure_reason(c, "Authentication failed");
	cl_linger(c, why);
}

/* ---------------------------------------------------------------------
 * ACL: who may use this screen, after they proved who they are.
 *
 * A flat file of rules checked in order, first match wins (QEMU's
 * authz-list, seeds/003).  See acl.txt.example for the format.  The
 * identity is what authentication established (SASL identity, VeNCrypt
 * Plain user, or for certificate-only logins the client certificate's
 * subject); "dn:" rules match the verified certificate subject; "from"
 * matches the peer address.
 * ------------------------------------------------------------------- */

static const char *const acl_action_name[] = { "allow", "deny", "view" };

/*
 * Distinguished names are matched RDN by RDN, never as re-parsed text
 * (the 2026 audit: a CN ending in '\' made the old text reversal read
 * "\\," as an escaped comma and reorder the RDNs).  A subject is its RDNs
 * as "TYPE=value" strings (values unescaped, multi-valued RDNs joined by
 * '+'), built from GnuTLS's parsed certificate; a dn: pattern is split at
 * its unescaped commas.  Each pattern RDN is a glob on one subject RDN,
 * so '*' never spans an RDN separator; the RDN counts must agree, in
 * X.500 order (C=GB,O=ACME,CN=alice) or RFC 4514 order (CN=alice,...).
 * "dn:*" alone matches every verified certificate.
 */

/* The i-th RDN of d (0 <= i < d->n). */
static const char *
dn_rdn(const struct dnparts *d, int i)
{
	const char *p = d->buf;

	while (i-- > 0)
		p += strlen(p) + 1;
	return p;
}

/* Append one RDN; -1 if it does not fit. */
static int
dn_add(struct dnparts *d, const char *rdn, size_t n)
{
	size_t used = 0;
	int i;

	for (i = 0; i < d->n; i++)
		used += strlen(dn_rdn(d, i)) + 1;
	if (d->n == DN_RDNS_MAX || memchr(rdn, '\0', n) != NULL ||
	    used + n + 1 > sizeof d->buf)
		return -1;
	memcpy(d->buf + used, rdn, n);
	d->buf[used + n] = '\0';
	d->n++;
	return 0;
}

/*
 * Split text at its unescaped commas into d.  Patterns keep their
 * escapes (fnmatch reads "\," as ","); a DN given as text (-t) is
 * unescaped as RFC 4514 says (\, \+ \\ ... and \XX in hex).  -1 if bad.
 */
static int
dn_split(const char *text, struct dnparts *d, int unescape)
{
	char rdn[DN_MAX + 1];
	size_t o = 0;

	memset(d, 0, sizeof *d);
	for (;; text++) {
		if (*text == '\0' || *text == ',') {
			if (o == 0 || dn_add(d, rdn, o) < 0)
				return -1;
			if (*text == '\0')
				return 0;
			o = 0;
			continue;
		}
		if (o + 3 > sizeof rdn)
			return -1;
		if (*text != '\\') {
			rdn[o++] = *text;
		} else if (!unescape) {
			rdn[o++] = *text++;
			if (*text == '\0')
				return -1;
			rdn[o++] = *text;
		} else if (isxdigit((unsigned char)text[1]) &&
		    isxdigit((unsigned char)text[2])) {
			char hex[3] = { text[1], text[2], '\0' };

			rdn[o++] = (char)strtol(hex, NULL, 16);
			text += 2;
		} else if (*++text == '\0') {
			return -1;
		} else {
			rdn[o++] = *text;
		}
	}
}

/* An RDN's value as text: string types as they are, others as #hex. */
static int
dn_value(const gnutls_x509_ava_st *ava, char *out, size_t len)
{
	size_t i, o = 0;

	switch (ava->value_tag) {
	case 12: case 18: case 19: case 20: case 22: case 26:	/* strings */
		if (ava->value.size >= len)
			return -1;
		memcpy(out, ava->value.data, ava->value.size);
		out[ava->value.size] = '\0';
		return 0;
	}
	if (2 * (size_t)ava->value.size + 2 > len)
		return -1;
	out[o++] = '#';
	for (i = 0; i < ava->value.size; i++)
		o += (size_t)snprintf(out + o, len - o, "%02x",
		    ava->value.data[i]);
	return 0;
}

/* The subject of a certificate, RDN by RDN in X.500 (DER) order. */
static int
dn_of_crt(gnutls_x509_crt_t crt, struct dnparts *d)
{
	gnutls_x509_dn_t dn;
	gnutls_x509_ava_st ava;
	char rdn[DN_MAX + 1], val[DN_MAX + 1];
	int i, j;

	memset(d, 0, sizeof *d);
	if (gnutls_x509_crt_get_subject(crt, &dn) < 0)
		return -1;
	for (i = 0; gnutls_x509_dn_get_rdn_ava(dn, i, 0, &ava) == 0; i++) {
		size_t o = 0;

		for (j = 0; gnutls_x509_dn_get_rdn_ava(dn, i, j, &ava) == 0;
		    j++) {
			char oid[128];
			const char *name;

			if (ava.oid.size >= sizeof oid ||
			    dn_value(&ava, val, sizeof val) < 0)
				return -1;
			memcpy(oid, ava.oid.data, ava.oid.size);
			oid[ava.oid.size] = '\0';
			name = gnutls_x509_dn_oid_name(oid,
			    GNUTLS_X509_DN_OID_RETURN_OID);
			o += (size_t)snprintf(rdn + o, sizeof rdn - o, "%s%s=%s",
			    j ? "+" : "", name, val);
			if (o >= sizeof rdn)
				return -1;
		}
		if (dn_add(d, rdn, o) < 0)
			return -1;
	}
	return d->n > 0 ? 0 : -1;
}

static int
dn_matches(const struct dnparts *pat, const struct dnparts *dn)
{
	const char *p[DN_RDNS_MAX], *v[DN_RDNS_MAX];
	int i, fwd = 1, rev = 1;

	if (dn->n == 0)
		return 0;
	if (pat->n == 1 && strcmp(pat->buf, "*") == 0)
		return 1;
	if (pat->n != dn->n)
		return 0;
	for (i = 0; i < dn->n; i++) {
		p[i] = dn_rdn(pat, i);
		v[i] = dn_rdn(dn, i);
	}
	for (i = 0; i < dn->n; i++) {
		fwd &= fnmatch(p[i], v[i], 0) == 0;
		rev &= fnmatch(p[i], v[dn->n - 1 - i], 0) == 0;
	}
	return fwd || rev;
}

static void
acl_free(struct acl *a)
{
	int i;

	if (a == NULL)
		return;
	for (i = 0; i < a->n; i++) {
		free(a->rule[i].pattern);
		free(a->rule[i].from);
		free(a->rule[i].dnpat);
	}
	free(a->rule);
	free(a);
}

/* Next token: a word, or a "double-quoted string" (no escapes). */
static int
acl_token(char **pp, char **tok)
{
	char *p = *pp;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	if (*p == '"') {
		*tok = ++p;
		if ((p = strchr(p, '"')) == NULL)
			return -1;
		*p++ = '\0';
		if (*p != '\0' && *p != ' ' && *p != '\t')
			return -1;
	} else {
		*tok = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	if (*p)
		*p++ = '\0';
	*pp = p;
	return 1;
}

/* Parse one line into a; NULL if good, else why not. */
static const char *
acl_line(struct acl *a, char *line, int lineno, int *policy_line)
{
	char *tok[5];
	int n = 0, r, i;
	struct acl_rule *nr;

	while (n < 5 && (r = acl_token(&line, &tok[n])) > 0)
		n++;
	if (r < 0)
		return "unterminated quote";
	if (n == 0)
		return NULL;
	if (strcmp(tok[0], "policy") == 0) {
		if (n != 2 || (strcmp(tok[1], "allow") && strcmp(tok[1], "deny")))
			return "want: policy allow|deny";
		if (*policy_line)
			return "a second policy line";
		*policy_line = lineno;
		a->policy = strcmp(tok[1], "allow") == 0 ? ACL_ALLOW : ACL_DENY;
		return NULL;
	}
	for (i = 0; i < 3; i++)
		if (strcmp(tok[0], acl_action_name[i]) == 0)
			break;
	if (i == 3)
		return "unknown keyword (want policy, allow, deny or view)";
	if (n < 2)
		return "missing pattern";
	if (n == 3 || n > 4 || (n == 4 && strcmp(tok[2], "from") != 0))
		return "want: allow|deny|view PATTERN [from ADDRESS-GLOB]";
	if (strcmp(tok[1], "dn:") == 0 || tok[1][0] == '\0')
		return "empty pattern";
	if (a->n == ACL_RULES_MAX)
		return "too many rules (limit " XSTR(ACL_RULES_MAX) ")";
	if (a->n == a->cap) {
		a->cap = a->cap ? 2 * a->cap : 16;
		if ((nr = realloc(a->rule, a->cap * sizeof *nr)) == NULL)
			return "out of memory";
		a->rule = nr;
	}
	nr = &a->rule[a->n];
	memset(nr, 0, sizeof *nr);
	nr->action = (enum acl_action)i;
	nr->line = lineno;
	nr->dn = strncmp(tok[1], "dn:", 3) == 0;
	nr->pattern = strdup(tok[1] + (nr->dn ? 3 : 0));
	nr->from = n == 4 ? strdup(tok[3]) : NULL;
	if (nr->dn && (nr->dnpat = malloc(sizeof *nr->dnpat)) == NULL)
		return "out of memory";
	a->n++;		/* from here acl_free() frees what it holds */
	if (nr->pattern == NULL || (n == 4 && nr->from == NULL))
		return "out of memory";
	if (nr->dn && dn_split(nr->pattern, nr->dnpat, 0) < 0)
		return "dn: pattern with an empty RDN, too many RDNs (limit "
		    XSTR(DN_RDNS_MAX) ") or too long";
	return NULL;
}

/* Read an ACL file; NULL with "FILE:LINE: reason" in err if it is bad. */
static struct acl *
acl_load(const char *path, char *err, size_t errlen)
{
	char line[ACL_LINE_MAX + 2];
	struct acl *a;
	const char *why;
	int lineno = 0, policy_line = 0, r;
	FILE *f;

	if ((f = conf_open(path, S_IWGRP | S_IWOTH, "chmod go-w it", err,
	    errlen)) == NULL)
		return NULL;
	if ((a = calloc(1, sizeof *a)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	a->policy = ACL_DENY;	/* a file that says nothing denies */
	snprintf(a->path, sizeof a->path, "%s", path);
	while ((r = line_next(f, line, sizeof line, path, &lineno, err,
	    errlen)) > 0)
		if ((why = acl_line(a, line, lineno, &policy_line)) != NULL) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	if (r < 0)
		goto fail;
	fclose(f);
	return a;
fail:
	fclose(f);
	acl_free(a);
	return NULL;
}

/*
 * A rule matches: user rules the authenticated user name ("" for the
 * nameless None and VNC logins), dn: rules the verified certificate's
 * subject - never the one for the other (a certificate whose CN reads
 * eve@EXAMPLE.COM is no Kerberos principal).
 */
static int
acl_rule_matches(const struct acl_rule *r, const char *user,
    const struct dnparts *dn, const char *addr)
{
	if (r->from != NULL && fnmatch(r->from, addr, 0) != 0)
		return 0;
	if (r->dn)
		return dn != NULL && dn_matches(r->dnpat, dn);
	return fnmatch(r->pattern, user, 0) == 0;
}

/* The decision for an identity, and the rule that made it. */
static enum acl_action
acl_check(const struct acl *a, const char *user, const struct dnparts *dn,
    const char *addr, char *rule, size_t rulelen)
{
	int i;

	if (a == NULL) {
		snprintf(rule, rulelen, "-");
		return ACL_ALLOW;
	}
	for (i = 0; i < a->n; i++)
		if (acl_rule_matches(&a->rule[i], user, dn, addr)) {
			snprintf(rule, rulelen, "%s:%d", a->path, a->rule[i].line);
			return a->rule[i].action;
		}
	snprintf(rule, rulelen, "%s:policy", a->path);
	return a->policy;
}

/* ---------------------------------------------------------------------
 * Credentials: the password file behind the one GNU SASL callback.
 *
 * A record is "USER:{SCRAM-SHA-256}ITER,SALT,STOREDKEY,SERVERKEY" (or
 * SCRAM-SHA-1), the form `gsasl --mkpasswd` prints and `vncsasl -k`
 * writes: no password, nothing a thief can log in with.  PLAIN and LOGIN
 * passwords are checked by deriving the keys from the stored salt.
 * Unknown users get a salt, an iteration count and keys derived from a
 * secret, so the exchange runs the same way and fails the same way as a
 * wrong password (no user enumeration).
 * ------------------------------------------------------------------- */

static Gsasl_hash
mech_hash(const char *mech)
{
	/* "SHA-256" also matches the -PLUS names (SASL-NOTES 2) */
	return strstr(mech, "SHA-256") ? GSASL_HASH_SHA256 : GSASL_HASH_SHA1;
}

static int
b64_decode(const char *in, uint8_t *out, size_t max, size_t *len)
{
	char *raw;
	size_t n;

	if (*in == '\0' || gsasl_base64_from(in, strlen(in), &raw, &n) !=
	    GSASL_OK)
		return -1;
	if (n > max) {
		gsasl_free(raw);
		return -1;
	}
	memcpy(out, raw, n);
	*len = n;
	gsasl_free(raw);
	return 0;
}

static int
b64_encode(const uint8_t *in, size_t n, char *out, size_t max)
{
	char *b;
	size_t bl;

	if (gsasl_base64_to((const char *)in, n, &b, &bl) != GSASL_OK)
		return -1;
	if (bl >= max) {
		gsasl_free(b);
		return -1;
	}
	memcpy(out, b, bl + 1);
	gsasl_free(b);
	return 0;
}

/* A user name we can store on one line and log: no ':' or controls. */
static int
user_valid(const char *u, size_t n)
{
	size_t i;

	if (n == 0 || n > USER_MAX || u[0] == '#')
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)u[i] < 0x20 || u[i] == 0x7f || u[i] == ':')
			return 0;
	return 1;
}

/* Parse one record in place; NULL if good, else why not. */
static const char *
cred_parse(char *line, struct cred *cr)
{
	char *colon = strchr(line, ':'), *f[5], *p, *end;
	size_t n;
	unsigned long iter;
	int k = 0;

	memset(cr, 0, sizeof *cr);
	if (colon == NULL)
		return "no ':' after the user name";
	if (!user_valid(line, (size_t)(colon - line)))
		return "bad user name (1-255 bytes, no ':' or control characters)";
	memcpy(cr->user, line, (size_t)(colon - line));
	p = colon + 1;
	if (strncmp(p, "{SCRAM-SHA-256}", 15) == 0) {
		cr->hash = GSASL_HASH_SHA256;
		p += 15;
	} else if (strncmp(p, "{SCRAM-SHA-1}", 13) == 0) {
		cr->hash = GSASL_HASH_SHA1;
		p += 13;
	} else {
		return "unknown scheme (want {SCRAM-SHA-256} or {SCRAM-SHA-1})";
	}
	for (f[k++] = p; (p = strchr(p, ',')) != NULL && k < 5; f[k++] = ++p)
		*p = '\0';
	if (k == 5)
		return "five fields: the salted password gsasl --verbose adds "
		    "is as good as the password; remove it";
	if (k != 4)
		return "want ITER,SALT,STOREDKEY,SERVERKEY";
	errno = 0;
	iter = strtoul(f[0], &end, 10);
	if (end == f[0] || *end || errno || iter < 1 || iter > SCRAM_ITER_MAX)
		return "iteration count must be 1 to 65536 (Cyrus clients "
		    "refuse more)";
	cr->iter = (unsigned)iter;
	if (b64_decode(f[1], cr->salt, SALT_MAX, &cr->saltlen) < 0)
		return "salt is not base64 of 1 to 64 bytes";
	if (b64_decode(f[2], cr->stored, sizeof cr->stored, &n) < 0 ||
	    n != gsasl_hash_length(cr->hash) ||
	    b64_decode(f[3], cr->server, sizeof cr->server, &n) < 0 ||
	    n != gsasl_hash_length(cr->hash))
		return "StoredKey or ServerKey is not base64 of the hash size";
	if (b64_encode(cr->salt, cr->saltlen, cr->salt64, sizeof cr->salt64) ||
	    b64_encode(cr->stored, n, cr->stored64, sizeof cr->stored64) ||
	    b64_encode(cr->server, n, cr->server64, sizeof cr->server64))
		return "out of memory";
	return NULL;
}

/*
 * Read a password file.  0 and the records, or -1 with "FILE:LINE:
 * reason" in err.  key gets a digest of the whole file: the secret behind
 * unknown users' fake salts, stable while the file is.
 */
static int
passwd_read(const char *path, struct cred **out, size_t *nout,
    uint8_t key[SHA256_DIGEST_SIZE], char *err, size_t errlen)
{
	char line[PASSWD_LINE_MAX + 2];
	struct cred *v = NULL, *nv;
	struct sha256_ctx sha;
	size_t n = 0, cap = 0, i;
	const char *why;
	int lineno = 0, r;
	FILE *f;

	if ((f = conf_open(path, S_IRWXG | S_IRWXO, "chmod 600 it", err,
	    errlen)) == NULL)
		return -1;
	sha256_init(&sha);
	while ((r = line_next(f, line, sizeof line, path, &lineno, err,
	    errlen)) > 0) {
		sha256_update(&sha, strlen(line) + 1, (const uint8_t *)line);
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (n == PASSWD_USERS_MAX) {
			snprintf(err, errlen, "%s:%d: more than %d records", path,
			    lineno, PASSWD_USERS_MAX);
			goto fail;
		}
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			if ((nv = realloc(v, cap * sizeof *v)) == NULL) {
				snprintf(err, errlen, "%s: out of memory", path);
				goto fail;
			}
			v = nv;
		}
		if ((why = cred_parse(line, &v[n])) != NULL) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
		for (i = 0; i < n; i++)
			if (v[i].hash == v[n].hash &&
			    strcmp(v[i].user, v[n].user) == 0) {
				snprintf(err, errlen, "%s:%d: %s has a second "
				    "record of the same kind", path, lineno,
				    v[n].user);
				goto fail;
			}
		n++;
	}
	if (r < 0)
		goto fail;
	fclose(f);
	memset(line, 0, sizeof line);
	sha256_digest(&sha, SHA256_DIGEST_SIZE, key);
	*out = v;
	*nout = n;
	return 0;
fail:
	fclose(f);
	memset(line, 0, sizeof line);
	free(v);
	return -1;
}

static void
passwd_install(struct server *s, struct cred *v, size_t n,
    const uint8_t key[SHA256_DIGEST_SIZE])
{
	if (s->creds != NULL) {
		memset(s->creds, 0, s->ncreds * sizeof *s->creds);
		free(s->creds);
	}
	s->creds = v;
	s->ncreds = n;
	memcpy(s->fake_key, key, SHA256_DIGEST_SIZE);
	for (s->max_iter = SCRAM_ITER_DEFAULT; n > 0; n--)
		if (v[n - 1].iter > s->max_iter)
			s->max_iter = v[n - 1].iter;
}

static void
fake_bytes(const struct server *s, const char *what, Gsasl_hash h,
    const char *user, uint8_t *out, size_t n)
{
	struct hmac_sha256_ctx ctx;
	uint8_t d[SHA256_DIGEST_SIZE], hb = (uint8_t)h;

	hmac_sha256_set_key(&ctx, sizeof s->fake_key, s->fake_key);
	hmac_sha256_update(&ctx, strlen(what) + 1, (const uint8_t *)what);
	hmac_sha256_update(&ctx, 1, &hb);
	hmac_sha256_update(&ctx, strlen(user), (const uint8_t *)user);
	hmac_sha256_digest(&ctx, sizeof d, d);
	memcpy(out, d, n);
}

/*
 * The real record an unknown user's fake one takes its shape from: one of
 * hash h's (of any hash if h has none, or if any is set), chosen by the
 * name.  So the iteration counts and salt lengths unknown names get are
 * drawn from the file's own mix, and each name always gets the same.
 */
static const struct cred *
fake_model(const struct server *s, const char *user, Gsasl_hash h, int any)
{
	uint8_t d[4];
	size_t i, k = 0, pick;

	for (i = 0; i < s->ncreds; i++)
		k += any || s->creds[i].hash == h;
	if (k == 0 && !any)
		return fake_model(s, user, h, 1);
	if (k == 0)
		return NULL;
	fake_bytes(s, "model", h, user, d, sizeof d);
	pick = ((size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 |
	    d[3]) % k;
	for (i = 0; i < s->ncreds; i++)
		if ((any || s->creds[i].hash == h) && pick-- == 0)
			break;
	return &s->creds[i];
}

/* The user's record for this hash, or a consistent fake one. */
static const struct cred *
cred_lookup(struct client *c, const char *user, Gsasl_hash h,
    struct cred *fake)
{
	const struct server *s = c->srv;
	const struct cred *model;
	size_t i, n = gsasl_hash_length(h);

	for (i = 0; i < s->ncreds; i++)
		if (s->creds[i].hash == h && strcmp(s->creds[i].user, user) == 0)
			return &s->creds[i];
	c->unknown_user = 1;
	model = fake_model(s, user, h, 0);
	memset(fake, 0, sizeof *fake);
	fake->hash = h;
	fake->iter = model ? model->iter : SCRAM_ITER_DEFAULT;
	fake->saltlen = model ? model->saltlen : 16;
	fake_bytes(s, "salt", h, user, fake->salt, fake->saltlen);
	fake_bytes(s, "stored", h, user, fake->stored, n);
	fake_bytes(s, "server", h, user, fake->server, n);
	b64_encode(fake->salt, fake->saltlen, fake->salt64, sizeof fake->salt64);
	b64_encode(fake->stored, n, fake->stored64, sizeof fake->stored64);
	b64_encode(fake->server, n, fake->server64, sizeof fake->server64);
	return fake;
}

/* PLAIN, LOGIN and the VeNCrypt Plain subtypes: derive and compare. */
static int
cred_check_password(struct client *c, const char *user, const char *pass)
{
	char salted[GSASL_HASH_MAX_SIZE], ck[GSASL_HASH_MAX_SIZE];
	char sk[GSASL_HASH_MAX_SIZE], stk[GSASL_HASH_MAX_SIZE];
	const struct cred *cr;
	struct cred fake;
	size_t i, n;
	int ok = 0;

	for (cr = NULL, i = 0; i < c->srv->ncreds && cr == NULL; i++)
		if (strcmp(c->srv->creds[i].user, user) == 0)
			cr = &c->srv->creds[i];
	if (cr == NULL) {	/* the same work as for a real user */
		const struct cred *model = fake_model(c->srv, user,
		    GSASL_HASH_SHA256, 1);

		cr = cred_lookup(c, user, model ? model->hash :
		    GSASL_HASH_SHA256, &fake);
	}
	n = gsasl_hash_length(cr->hash);
	if (gsasl_scram_secrets_from_password(cr->hash, pass, cr->iter,
	    (const char *)cr->salt, cr->saltlen, salted, ck, sk, stk) ==
	    GSASL_OK)
		ok = memeql_sec(stk, cr->stored, n) & memeql_sec(sk,
		    cr->server, n);
	memset(salted, 0, sizeof salted);
	memset(ck, 0, sizeof ck);
	memset(sk, 0, sizeof sk);
	memset(stk, 0, sizeof stk);
	return ok && !c->unknown_user;
}

/* Does the password file (still) know this user? */
static int
passwd_has(const struct server *s, const char *user)
{
	size_t i;

	for (i = 0; i < s->ncreds; i++)
		if (strcmp(s->creds[i].user, user) == 0)
			return 1;
	return 0;
}

/*
 * -- PAM: system accounts, checked in a helper process --
 *
 * PAM modules block (pam_unix waits ~2 s after a wrong password; others
 * call out to the network), so the poll loop never calls PAM.  At start,
 * before privileges are dropped, the server forks a broker that keeps
 * root (pam_unix must read the shadow file) and does nothing else: it
 * takes requests over a socketpair, runs each conversation in a worker
 * process of its own (at most PAM_WORKERS at once, each killed after
 * PAM_TIMEOUT_S or when its viewer goes away), and answers.  The loop
 * meanwhile serves everyone else; the waiting client is simply not read.
 *
 * PAM serves the password mechanisms (PLAIN, LOGIN, the VeNCrypt Plain
 * subtypes) for users the password file does not have; SCRAM stays with
 * the file.  A success needs pam_authenticate and pam_acct_mgmt (expired
 * or locked accounts are refused); the identity is PAM's user afterwards.
 */
#ifdef HAVE_PAM
#include <security/pam_appl.h>
#include <sys/wait.h>

/* One message each way (SOCK_SEQPACKET keeps them whole). */
struct pam_msg {
	uint32_t id;		/* the request's, echoed in its answer */
	uint8_t op;		/* PAM_OP_* */
	char addr[INET6_ADDRSTRLEN];	/* PAM_RHOST */
	char user[USER_MAX + 1];
	char pass[PASSWORD_MAX + 1];	/* requests only */
};

enum { PAM_OP_CHECK = 1, PAM_OP_CANCEL, PAM_OP_OK, PAM_OP_FAIL,
	PAM_OP_REFUSED, PAM_OP_ERROR };

/* The conversation: the password for hidden prompts, the user otherwise. */
static int
pam_conv_answer(int n, const struct pam_message **msg,
    struct pam_response **resp, void *data)
{
	const struct pam_msg *m = data;
	struct pam_response *r;
	int i;

	if (n <= 0 || n > PAM_MAX_NUM_MSG ||
	    (r = calloc((size_t)n, sizeof *r)) == NULL)
		return PAM_CONV_ERR;
	for (i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF)
			r[i].resp = strdup(m->pass);
		else if (msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
			r[i].resp = strdup(m->user);
		else
			continue;	/* info and error texts */
		if (r[i].resp == NULL) {
			while (i-- > 0)
				free(r[i].resp);
			free(r);
			return PAM_CONV_ERR;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

/* A worker: one conversation, its answer on fd, then _exit. */
static void
pam_worker(int fd, const char *service, struct pam_msg *m)
{
	struct pam_conv conv = { pam_conv_answer, m };
	pam_handle_t *h = NULL;
	const void *user = NULL;
	int r;

	r = pam_start(service, m->user, &conv, &h);
	if (r == PAM_SUCCESS)
		pam_set_item(h, PAM_RHOST, m->addr);
	if (r == PAM_SUCCESS)
		r = pam_authenticate(h, PAM_DISALLOW_NULL_AUTHTOK);
	memset(m->pass, 0, sizeof m->pass);
	m->op = r == PAM_SUCCESS ? PAM_OP_OK : r == PAM_AUTH_ERR ||
	    r == PAM_USER_UNKNOWN || r == PAM_MAXTRIES ? PAM_OP_FAIL :
	    PAM_OP_ERROR;
	if (r == PAM_SUCCESS && (r = pam_acct_mgmt(h,
	    PAM_DISALLOW_NULL_AUTHTOK)) != PAM_SUCCESS)
		m->op = PAM_OP_REFUSED;	/* expired, locked, not allowed */
	if (m->op == PAM_OP_OK && pam_get_item(h, PAM_USER, &user) ==
	    PAM_SUCCESS && user != NULL)
		snprintf(m->user, sizeof m->user, "%s", (const char *)user);
	if (h != NULL)
		pam_end(h, r);
	if (write(fd, m, sizeof *m) != (ssize_t)sizeof *m)
		_exit(1);
	_exit(0);
}

struct pam_job {
	pid_t pid;
	int fd;			/* the worker's answer */
	uint32_t id;
	long long deadline;
};

static int
pam_spawn(struct pam_job *j, struct pam_msg *m, const char *service, int ctl)
{
	int p[2];

	if (pipe(p) < 0)
		return -1;
	if ((j->pid = fork()) < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (j->pid == 0) {
		close(p[0]);
		close(ctl);
		pam_worker(p[1], service, m);
	}
	close(p[1]);
	memset(m->pass, 0, sizeof m->pass);
	j->fd = p[0];
	j->id = m->id;
	j->deadline = mono_ms() + PAM_TIMEOUT_S * 1000;
	return 0;
}

/* The broker's loop: requests in, workers out, answers back.  Ends when
 * the server's end of the socket closes. */
static void
pam_broker(int ctl, const char *service)
{
	struct pam_job job[PAM_WORKERS];
	struct pollfd pfd[PAM_WORKERS + 1];
	struct pam_msg m;
	int i, n;

	memset(job, 0, sizeof job);
	for (i = 0; i < PAM_WORKERS; i++)
		job[i].fd = -1;
	for (;;) {
		long long now = mono_ms();

		pfd[0].fd = ctl;
		pfd[0].events = POLLIN;
		for (i = 0; i < PAM_WORKERS; i++) {
			pfd[i + 1].fd = job[i].fd;
			pfd[i + 1].events = POLLIN;
		}
		n = poll(pfd, PAM_WORKERS + 1, 1000);
		if (n < 0 && errno != EINTR)
			_exit(1);
		for (i = 0; i < PAM_WORKERS; i++) {	/* answers, deadlines */
			int done = job[i].fd >= 0 && n > 0 &&
			    (pfd[i + 1].revents & (POLLIN | POLLHUP));

			if (job[i].fd < 0 || (!done && now < job[i].deadline))
				continue;
			if (!done || read(job[i].fd, &m, sizeof m) !=
			    (ssize_t)sizeof m) {
				memset(&m, 0, sizeof m);
				m.op = PAM_OP_ERROR;	/* killed, or died */
			}
			m.id = job[i].id;
			send(ctl, &m, sizeof m, 0);
			kill(job[i].pid, SIGKILL);
			waitpid(job[i].pid, NULL, 0);
			close(job[i].fd);
			job[i].fd = -1;
		}
		if (n <= 0 || !(pfd[0].revents & (POLLIN | POLLHUP)))
			continue;
		if (recv(ctl, &m, sizeof m, 0) != (ssize_t)sizeof m)
			_exit(0);	/* the server is gone */
		m.user[sizeof m.user - 1] = m.pass[sizeof m.pass - 1] = '\0';
		m.addr[sizeof m.addr - 1] = '\0';
		for (i = 0; i < PAM_WORKERS; i++)
			if (m.op == PAM_OP_CANCEL ? job[i].fd >= 0 &&
			    job[i].id == m.id : job[i].fd < 0)
				break;
		if (m.op == PAM_OP_CANCEL) {
			if (i < PAM_WORKERS)
				job[i].deadline = 0;	/* killed next turn */
			continue;
		}
		if (i == PAM_WORKERS || pam_spawn(&job[i], &m, service, ctl) < 0) {
			m.op = PAM_OP_ERROR;	/* busy: fail, not queue */
			memset(m.pass, 0, sizeof m.pass);
			send(ctl, &m, sizeof m, 0);
		}
	}
}

/* A password check for PAM: off to the broker; c waits, not read. */
static void
pam_submit(struct client *c)
{
	struct server *s = c->srv;
	struct pam_msg m;

	memset(&m, 0, sizeof m);
	m.id = c->pam->id = ++s->pam_seq;
	m.op = PAM_OP_CHECK;
	snprintf(m.addr, sizeof m.addr, "%s", c->addr);
	snprintf(m.user, sizeof m.user, "%s", c->pam->user);
	snprintf(m.pass, sizeof m.pass, "%s", c->pam->pass);
	memset(c->pam->pass, 0, sizeof c->pam->pass);
	c->pam->deferred = 0;
	if (s->pam_fd < 0 || send(s->pam_fd, &m, sizeof m, MSG_DONTWAIT) !=
	    (ssize_t)sizeof m) {
		memset(&m, 0, sizeof m);
		m.op = PAM_OP_ERROR;
		c->pam->waiting = 1;
		pam_answer(c, &m);
		return;
	}
	memset(&m, 0, sizeof m);
	c->pam->waiting = 1;
}

/* The broker's verdict: SASL's last step answered, then the decision. */
static void
pam_answer(struct client *c, const struct pam_msg *m)
{
	const char *authz = c->sasl != NULL ? gsasl_property_fast(c->sasl,
	    GSASL_AUTHZID) : NULL;
	int ok = m->op == PAM_OP_OK && user_valid(m->user, strlen(m->user));

	c->pam->waiting = 0;
	if (c->sec->start == auth_sasl) {
		wr_u32(c, 0);	/* no data; complete (PROTOCOL 2.7) */
		wr_u8(c, 1);
	}
	if (ok && authz != NULL && *authz != '\0' &&
	    strcmp(authz, c->pam->user) != 0)
		auth_decide(c, c->pam->user, 0, "asked to act as another "
		    "identity");
	else
		auth_decide(c, ok ? m->user : c->pam->user, ok,
		    m->op == PAM_OP_REFUSED ? "PAM: account refused" :
		    m->op == PAM_OP_FAIL ? "wrong password" :
		    "PAM: no answer (error, timeout or busy)");
	if (!c->dead && c->state != ST_CLOSING)
		cl_process(c);
}

/* The broker has news: each answer goes to the client still waiting. */
static void
pam_readable(struct server *s)
{
	struct pam_msg m;
	struct client *c;
	ssize_t r;

	while ((r = recv(s->pam_fd, &m, sizeof m, MSG_DONTWAIT)) ==
	    (ssize_t)sizeof m) {
		m.user[sizeof m.user - 1] = '\0';
		for (c = s->clients; c != NULL; c = c->next)
			if (!c->dead && c->pam != NULL && c->pam->waiting &&
			    c->pam->id == m.id) {
				pam_answer(c, &m);
				break;
			}
	}
	if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR)) {
		logx(s, LOG_ERR, "PAM helper gone (%s); PAM logins fail from "
		    "now on", r == 0 ? "closed" : strerror(errno));
		close(s->pam_fd);
		s->pam_fd = -1;
		waitpid(s->pam_pid, NULL, WNOHANG);
		memset(&m, 0, sizeof m);
		m.op = PAM_OP_ERROR;
		for (c = s->clients; c != NULL; c = c->next)
			if (!c->dead && c->pam != NULL && c->pam->waiting)
				pam_answer(c, &m);
	}
}

/* A client goes away: its conversation, if any, is ended. */
static void
pam_forget(struct client *c)
{
	struct pam_msg m;

	if (c->pam == NULL)
		return;
	if (c->pam->waiting && c->srv->pam_fd >= 0) {
		memset(&m, 0, sizeof m);
		m.id = c->pam->id;
		m.op = PAM_OP_CANCEL;
		send(c->srv->pam_fd, &m, sizeof m, MSG_DONTWAIT);
	}
	memset(c->pam, 0, sizeof *c->pam);
	free(c->pam);
	c->pam = NULL;
}

/* Start the broker (step 2 of main, before privileges are dropped). */
static void
pam_setup(struct server *s)
{
	int sv[2];
	pid_t pid;

	if (s->pam_service == NULL)
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
		die(1, "-P pam:%s: socketpair: %s", s->pam_service,
		    strerror(errno));
	if ((pid = fork()) < 0)
		die(1, "-P pam:%s: fork: %s", s->pam_service, strerror(errno));
	if (pid == 0) {
		close(sv[0]);
		signal(SIGPIPE, SIG_IGN);
		signal(SIGINT, SIG_IGN);	/* the server ends us */
		signal(SIGHUP, SIG_IGN);
		pam_broker(sv[1], s->pam_service);
		_exit(0);
	}
	close(sv[1]);
	if (set_nonblock(sv[0]) < 0)
		die(1, "-P pam:%s: %s", s->pam_service, strerror(errno));
	s->pam_fd = sv[0];
	s->pam_pid = pid;
}
#endif

/*
 * The GNU SASL callback's question "is this password right?" for a user
 * the password file does not have: with PAM, the answer waits - GSASL_OK
 * now lets the mechanism finish, and the PAM verdict replaces it before
 * anything is sent (pam_submit(), pam_answer()).  0 if PAM does not
 * apply.
 */
static int
pam_defer(struct client *c, const char *user, const char *pass)
{
#ifdef HAVE_PAM
	if (c->srv->pam_service == NULL || passwd_has(c->srv, user) ||
	    strlen(pass) > PASSWORD_MAX ||
	    (c->pam == NULL && (c->pam = calloc(1, sizeof *c->pam)) == NULL))
		return 0;
	snprintf(c->pam->user, sizeof c->pam->user, "%s", user);
	snprintf(c->pam->pass, sizeof c->pam->pass, "%s", pass);
	c->pam->deferred = 1;
	return 1;
#else
	(void)c;
	(void)user;
	(void)pass;
	return 0;
#endif
}

/* A record's secrets from a password: SCRAM's salted keys, as -k and the
 * ad-hoc mode make them.  -1 if GNU SASL cannot derive them. */
static int
cred_derive(struct cred *cr, const char *user, Gsasl_hash h, const char *pass,
    const uint8_t *salt, size_t saltlen, unsigned iter)
{
	char salted[GSASL_HASH_MAX_SIZE], ck[GSASL_HASH_MAX_SIZE];
	char sk[GSASL_HASH_MAX_SIZE], stk[GSASL_HASH_MAX_SIZE];
	size_t n = gsasl_hash_length(h);
	int r;

	memset(cr, 0, sizeof *cr);
	snprintf(cr->user, sizeof cr->user, "%s", user);
	cr->hash = h;
	cr->iter = iter;
	cr->saltlen = saltlen < SALT_MAX ? saltlen : SALT_MAX;
	memcpy(cr->salt, salt, cr->saltlen);
	r = gsasl_scram_secrets_from_password(h, pass, iter,
	    (const char *)salt, saltlen, salted, ck, sk, stk);
	if (r == GSASL_OK) {
		memcpy(cr->stored, stk, n);
		memcpy(cr->server, sk, n);
		if (b64_encode(cr->salt, cr->saltlen, cr->salt64,
		    sizeof cr->salt64) < 0 || b64_encode(cr->stored, n,
		    cr->stored64, sizeof cr->stored64) < 0 ||
		    b64_encode(cr->server, n, cr->server64,
		    sizeof cr->server64) < 0)
			r = GSASL_MALLOC_ERROR;
	}
	memset(salted, 0, sizeof salted);
	memset(ck, 0, sizeof ck);
	memset(sk, 0, sizeof sk);
	memset(stk, 0, sizeof stk);
	return r == GSASL_OK ? 0 : -1;
}

/* -- the ad-hoc mode: a one-time user that lives in memory only -- */

/*
 * When nothing else could let anyone in (no -P, no keytab, no -w, no
 * None type asked for, not -i), the server makes a user with a strong
 * random password, keeps only its SCRAM keys, and prints the password
 * once (announce()).  Nothing is written anywhere.
 */
static int
adhoc_wanted(const struct server *s, const char *seclist, int keytab,
    int vncpass, int inetd)
{
	const struct sectype *st;
	const char *item, *p = seclist;
	size_t len;

	if (s->passwd_path != NULL || s->pam_service != NULL || keytab ||
	    vncpass || inetd)
		return 0;
	while (p != NULL && list_next(&p, &item, &len))
		if ((st = sectype_by_name(item, len)) != NULL &&
		    st->start == auth_none)
			return 0;
	return 1;
}

/* 20 characters from 31 that cannot be misread (no 0/o, 1/l/i): ~99 bits,
 * in groups of five to read out over the phone. */
static void
adhoc_password(char *pw, size_t size)
{
	static const char abc[] = "abcdefghjkmnpqrstuvwxyz23456789";
	uint8_t r[64];
	size_t i, k = 0, o = 0;

	while (o + 1 < size && o < ADHOC_PASSWORD_LEN) {
		if (k == 0 && gnutls_rnd(GNUTLS_RND_KEY, r, sizeof r) < 0)
			die(1, "ad-hoc: no random bytes");
		i = r[k];
		k = (k + 1) % sizeof r;
		if (i >= 8 * (sizeof abc - 1))	/* no modulo bias */
			continue;
		if (o > 0 && o % 6 == 5)
			pw[o++] = '-';
		pw[o++] = abc[i % (sizeof abc - 1)];
	}
	pw[o] = '\0';
	memset(r, 0, sizeof r);
}

static void
adhoc_user(struct server *s)
{
	uint8_t salt[16], key[SHA256_DIGEST_SIZE];
	struct cred *v = calloc(2, sizeof *v);

	adhoc_password(s->adhoc_pw, sizeof s->adhoc_pw);
	if (v == NULL || gnutls_rnd(GNUTLS_RND_RANDOM, salt, sizeof salt) < 0 ||
	    gnutls_rnd(GNUTLS_RND_RANDOM, key, sizeof key) < 0 ||
	    cred_derive(&v[0], ADHOC_USER, GSASL_HASH_SHA256, s->adhoc_pw, salt,
	    sizeof salt, SCRAM_ITER_DEFAULT) < 0 ||
	    cred_derive(&v[1], ADHOC_USER, GSASL_HASH_SHA1, s->adhoc_pw, salt,
	    sizeof salt, SCRAM_ITER_DEFAULT) < 0)
		die(1, "ad-hoc: cannot make the user");
	passwd_install(s, v, 2, key);
	s->adhoc = 1;
}

static int tls_binding(struct client *, Gsasl_session *, Gsasl_property);

/* The one GNU SASL callback: every question the library asks. */
static int
sasl_callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
	const struct server *s = gsasl_callback_hook_get(ctx);
	struct client *c = gsasl_session_hook_get(sctx);
	const char *user = gsasl_property_fast(sctx, GSASL_AUTHID);
	const char *pass, *mech = gsasl_mechanism_name(sctx);
	const struct cred *cr;
	struct cred fake;
	char num[16];

	if (c == NULL || mech == NULL)
		return GSASL_NO_CALLBACK;
	switch (prop) {
	case GSASL_SERVICE:
		return gsasl_property_set(sctx, prop, "vnc");
	case GSASL_HOSTNAME:
		return gsasl_property_set(sctx, prop, s->sasl_host);
	case GSASL_SCRAM_ITER:
	case GSASL_SCRAM_SALT:
	case GSASL_SCRAM_STOREDKEY:
	case GSASL_SCRAM_SERVERKEY:
		if (user == NULL)
			return GSASL_NO_CALLBACK;
		cr = cred_lookup(c, user, mech_hash(mech), &fake);
		if (prop == GSASL_SCRAM_ITER) {
			snprintf(num, sizeof num, "%u", cr->iter);
			return gsasl_property_set(sctx, prop, num);
		}
		return gsasl_property_set(sctx, prop,
		    prop == GSASL_SCRAM_SALT ? cr->salt64 :
		    prop == GSASL_SCRAM_STOREDKEY ? cr->stored64 : cr->server64);
	case GSASL_VALIDATE_SIMPLE:
		pass = gsasl_property_fast(sctx, GSASL_PASSWORD);
		if (user == NULL || pass == NULL || strlen(user) > USER_MAX)
			return GSASL_AUTHENTICATION_ERROR;
		if (pam_defer(c, user, pass))
			return GSASL_OK;	/* for now: see pam_defer() */
		return cred_check_password(c, user, pass) ? GSASL_OK :
		    GSASL_AUTHENTICATION_ERROR;
	case GSASL_VALIDATE_GSSAPI:
		/* the KDC vouched for the name; the ACL decides the rest */
		return gsasl_property_fast(sctx, GSASL_GSSAPI_DISPLAY_NAME) ?
		    GSASL_OK : GSASL_AUTHENTICATION_ERROR;
	case GSASL_CB_TLS_UNIQUE:
	case GSASL_CB_TLS_EXPORTER:
		return tls_binding(c, sctx, prop);
	default:
		return GSASL_NO_CALLBACK;
	}
}

/* ---------------------------------------------------------------------
 * TLS (GnuTLS), non-blocking inside the poll loop, handshake included.
 * ------------------------------------------------------------------- */

static void
tls_setup(struct server *s, const char *cert, const char *key,
    const char *ca)
{
	int r;

	if (gnutls_anon_allocate_server_credentials(&s->anon) < 0 ||
	    gnutls_anon_set_server_known_dh_params(s->anon,
	    GNUTLS_SEC_PARAM_MEDIUM) < 0 ||
	    gnutls_priority_init(&s->prio_anon,
	    TLS_PRIO_ANON, NULL) < 0)
		die(1, "cannot set up anonymous TLS");
	if (cert == NULL)
		return;
	if (gnutls_certificate_allocate_credentials(&s->x509) < 0)
		die(1, "out of memory");
	s->cert_path = cert;
	if ((r = gnutls_certificate_set_x509_key_file(s->x509, cert, key,
	    GNUTLS_X509_FMT_PEM)) < 0)
		die(1, "-C %s -K %s: %s", cert, key, gnutls_strerror(r));
	if (ca != NULL) {
		if ((r = gnutls_certificate_set_x509_trust_file(s->x509, ca,
		    GNUTLS_X509_FMT_PEM)) <= 0)
			die(1, "-T %s: %s", ca, r < 0 ? gnutls_strerror(r) :
			    "no certificate in it");
		s->verify_clients = 1;
	}
}

/* The certificate's TLS settings, whichever made it (-C/-K, ad-hoc). */
static void
tls_x509_setup(struct server *s)
{
	if (s->x509 == NULL)
		return;
	gnutls_certificate_set_known_dh_params(s->x509, GNUTLS_SEC_PARAM_MEDIUM);
	if (gnutls_priority_init(&s->prio_x509, TLS_PRIO_X509, NULL) < 0)
		die(1, "cannot set up TLS priorities");
}

/*
 * The ad-hoc mode's certificate when -C/-K give none: a fresh ECDSA key
 * and a self-signed certificate, in memory only, for this host's names
 * and addresses.  Viewers that can (TigerVNC, Remmina) show its SHA-256
 * fingerprint and ask the person to accept it: trust on first use, and
 * the fingerprint we print is what they compare.
 */
static void
adhoc_cert_names(gnutls_x509_crt_t crt, const char *host)
{
	struct ifaddrs *ifa, *i;
	uint8_t lo6[16] = { [15] = 1 }, lo4[4] = { 127, 0, 0, 1 };

	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host,
	    (unsigned)strlen(host), GNUTLS_FSAN_APPEND);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
	    "localhost", 9, GNUTLS_FSAN_APPEND);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo4,
	    4, GNUTLS_FSAN_APPEND);
	gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, lo6,
	    16, GNUTLS_FSAN_APPEND);
	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i != NULL; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;

		if (sa == NULL || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		if (sa->sa_family == AF_INET)
			gnutls_x509_crt_set_subject_alt_name(crt,
			    GNUTLS_SAN_IPADDRESS, &((const struct sockaddr_in *)
			    (const void *)sa)->sin_addr, 4, GNUTLS_FSAN_APPEND);
		else if (sa->sa_family == AF_INET6)
			gnutls_x509_crt_set_subject_alt_name(crt,
			    GNUTLS_SAN_IPADDRESS, &((const struct sockaddr_in6 *)
			    (const void *)sa)->sin6_addr, 16, GNUTLS_FSAN_APPEND);
	}
	freeifaddrs(ifa);
}

static void
adhoc_cert(struct server *s, const char *host)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	uint8_t serial[16], id[64];
	size_t idlen = sizeof id;
	time_t now = time(NULL);
	int r;

	if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial) < 0)
		die(1, "ad-hoc: no random bytes");
	serial[0] &= 0x7f;	/* a positive INTEGER */
	if ((r = gnutls_x509_privkey_init(&key)) < 0 ||
	    (r = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
	    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
	    (r = gnutls_x509_crt_init(&crt)) < 0 ||
	    (r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (r = gnutls_x509_crt_set_serial(crt, serial, sizeof serial)) < 0 ||
	    (r = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (r = gnutls_x509_crt_set_expiration_time(crt, now +
	    ADHOC_CERT_DAYS * 86400L)) < 0 ||
	    (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME,
	    0, host, (unsigned)strlen(host))) < 0 ||
	    (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (r = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (r = gnutls_x509_crt_set_key_usage(crt,
	    GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (r = gnutls_x509_crt_set_key_purpose_oid(crt,
	    GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (r = gnutls_x509_crt_get_key_id(crt, 0, id, &idlen)) < 0 ||
	    (r = gnutls_x509_crt_set_subject_key_id(crt, id, idlen)) < 0)
		die(1, "ad-hoc: cannot make a certificate: %s",
		    gnutls_strerror(r));
	adhoc_cert_names(crt, host);
	if ((r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
	    (r = gnutls_certificate_allocate_credentials(&s->x509)) < 0 ||
	    (r = gnutls_certificate_set_x509_key(s->x509, &crt, 1, key)) < 0)
		die(1, "ad-hoc: cannot use the certificate: %s",
		    gnutls_strerror(r));
	s->adhoc_crt = crt;
	gnutls_x509_privkey_deinit(key);
}

/* "AB:CD:..." - the SHA-256 fingerprint of the server's certificate. */
static void
cert_fingerprint(const struct server *s, char *out, size_t len)
{
	gnutls_x509_crt_t *list = NULL;
	unsigned n = 0, i;
	uint8_t d[32];
	size_t dl = sizeof d, o = 0;

	out[0] = '\0';
	if (s->x509 == NULL || gnutls_certificate_get_x509_crt(s->x509, 0,
	    &list, &n) < 0)
		return;
	if (n > 0 && gnutls_x509_crt_get_fingerprint(list[0], GNUTLS_DIG_SHA256,
	    d, &dl) == 0)
		for (i = 0; i < dl && o + 4 <= len; i++)
			o += (size_t)snprintf(out + o, len - o, "%s%02X",
			    i ? ":" : "", d[i]);
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(list[i]);
	gnutls_free(list);
}

static void
tls_start(struct client *c)
{
	const struct server *s = c->srv;
	int x509 = c->sec->tls == TLS_X509;

	if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) {
		c->tls = NULL;
		cl_fail(c, "cannot start TLS");
		return;
	}
	if (x509) {
		gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, s->x509);
		gnutls_priority_set(c->tls, s->prio_x509);
		if (s->verify_clients)
			gnutls_certificate_server_set_request(c->tls,
			    GNUTLS_CERT_REQUIRE);
	} else {
		gnutls_credentials_set(c->tls, GNUTLS_CRD_ANON, s->anon);
		gnutls_priority_set(c->tls, s->prio_anon);
	}
	gnutls_transport_set_int2(c->tls, c->fd, c->wfd);
	c->state = ST_TLS;
}

/* -T: the client's certificate must verify; keep its subject for the ACL. */
static int
tls_verify_client(struct client *c)
{
	const gnutls_datum_t *certs;
	unsigned status = 0, n = 0;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { NULL, 0 }, msg = { NULL, 0 };
	int r;

	r = gnutls_certificate_verify_peers2(c->tls, &status);
	if (r < 0 || status != 0) {
		if (r >= 0)
			gnutls_certificate_verification_status_print(status,
			    GNUTLS_CRT_X509, &msg, 0);
		logx(c->srv, LOG_AUTH | LOG_WARNING, "auth peer=%s sec=%s "
		    "result=fail reason=client certificate: %s", c->peer,
		    c->sec != NULL ? c->sec->name : "wss", r < 0 ?
		    gnutls_strerror(r) :
		    msg.data ? (char *)msg.data : "not trusted");
		gnutls_free(msg.data);
		cl_fail(c, "client certificate rejected");
		return -1;
	}
	if ((certs = gnutls_certificate_get_peers(c->tls, &n)) == NULL ||
	    n == 0 || gnutls_x509_crt_init(&crt) < 0) {
		cl_fail(c, "no client certificate");
		return -1;
	}
	r = gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER);
	if (r >= 0)
		r = gnutls_x509_crt_get_dn3(crt, &dn, 0);
	if (r >= 0 && dn_of_crt(crt, &c->dnp) < 0)
		r = GNUTLS_E_ASN1_DER_ERROR;
	gnutls_x509_crt_deinit(crt);
	if (r < 0 || dn.size > DN_MAX) {
		gnutls_free(dn.data);
		cl_fail(c, "client certificate subject unreadable or too long");
		return -1;
	}
	memcpy(c->dn, dn.data, dn.size);
	c->dn[dn.size] = '\0';
	gnutls_free(dn.data);
	return 0;
}

static void cl_read(struct client *);
static void ws_tls_done(struct client *);

static void
tls_handshake(struct client *c)
{
	int r = gnutls_handshake(c->tls);
	char *desc, dn[4 * DN_MAX + 8];

	if (r < 0) {
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ||
		    !gnutls_error_is_fatal(r)) {
			c->tls_wdir = gnutls_record_get_direction(c->tls) == 1;
			return;
		}
		if (r == GNUTLS_E_FATAL_ALERT_RECEIVED)
			cl_fail(c, "TLS handshake: the viewer sent alert '%s'%s",
			    gnutls_alert_get_name(gnutls_alert_get(c->tls)),
			    c->sec->tls == TLS_X509 ? " (does it trust the "
			    "certificate?)" : "");
		else
			cl_fail(c, "TLS handshake: %s", gnutls_strerror(r));
		return;
	}
	c->tls_up = 1;
	c->tls_wdir = 0;
	c->ssf = (int)gnutls_cipher_get_key_size(gnutls_cipher_get(c->tls)) * 8;
	if (c->ssf <= 0) {
		cl_fail(c, "TLS without a cipher");
		return;
	}
	if (c->ws != NULL) {	/* wss: the HTTP request comes next */
		ws_tls_done(c);
		return;
	}
	if (c->srv->verify_clients && c->sec->tls == TLS_X509 &&
	    tls_verify_client(c) < 0)
		return;
	desc = gnutls_session_get_desc(c->tls);
	logx(c->srv, LOG_INFO, "tls peer=%s sec=%s %s ssf=%d dn=%s", c->peer,
	    c->sec->name, desc ? desc : "?", c->ssf, safe(c->dn, dn,
	    sizeof dn));
	gnutls_free(desc);
	auth_begin(c);
	/* application data may already sit in GnuTLS's buffer */
	if (!c->dead && !c->gate_until && c->state != ST_CLOSING)
		cl_read(c);
}

/*
 * tls-unique (TLS <= 1.2) or tls-exporter (TLS 1.3), for a -PLUS session,
 * and for a plain SCRAM session whose -PLUS form we offered: there gsasl
 * asks only when the client sent the GS2 flag "y" ("I can bind, but you
 * cannot"), and an answer makes it fail that client as the downgrade it
 * is (RFC 5802 6).  If the -PLUS form was not offered the client is right,
 * and we stay silent (SASL-NOTES 1).
 */
static int
tls_binding(struct client *c, Gsasl_session *sctx, Gsasl_property prop)
{
	gnutls_datum_t cb = { NULL, 0 };
	char plus[SASL_MECHNAME_MAX + 8], *b64;
	size_t len;
	int r;

	if (!c->tls_up)
		return GSASL_NO_CALLBACK;
	if (strstr(c->mech, "-PLUS") == NULL) {
		snprintf(plus, sizeof plus, "%s-PLUS", c->mech);
		if (!mech_offered(c->mechlist, plus, strlen(plus)))
			return GSASL_NO_CALLBACK;
	}
	if (gnutls_session_channel_binding(c->tls, prop == GSASL_CB_TLS_UNIQUE ?
	    GNUTLS_CB_TLS_UNIQUE : GNUTLS_CB_TLS_EXPORTER, &cb) < 0)
		return GSASL_NO_CALLBACK;
	r = gsasl_base64_to((const char *)cb.data, cb.size, &b64, &len);
	gnutls_free(cb.data);
	if (r != GSASL_OK)
		return r;
	r = gsasl_property_set(sctx, prop, b64);
	gsasl_free(b64);
	return r;
}

/* ---------------------------------------------------------------------
 * Authentication, in handshake order.
 * ProtocolVersion, the security list, VeNCrypt's version and subtype,
 * (the TLS handshake, above), then the chosen type's own exchange: None,
 * VNC authentication, SASL (type 20, or inside X509SASL/TLSSASL) or
 * VeNCrypt Plain.  Every exchange ends in auth_decide(): throttling, the
 * ACL, one audit line, SecurityResult.  Then ClientInit.
 * ------------------------------------------------------------------- */

/* -- ProtocolVersion and the security list -- */

/* The handshake's handlers, in the order a viewer meets them. */
static size_t h_version(struct client *, uint8_t *, size_t);
static void send_sectypes(struct client *);
static size_t h_sectype(struct client *, uint8_t *, size_t);
static void sec_start(struct client *, const struct sectype *);
static size_t h_vencrypt_version(struct client *, uint8_t *, size_t);
static size_t h_vencrypt_subtype(struct client *, uint8_t *, size_t);

/* "RFB xxx.yyy\n" (RFB 7.1.1). */
static size_t
h_version(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	unsigned major, minor;

	rd_lit(&r, "RFB ", 4);
	major = rd_dec(&r, 3);
	rd_lit(&r, ".", 1);
	minor = rd_dec(&r, 3);
	rd_lit(&r, "\n", 1);
	if (r.err) {
		cl_fail(c, "not an RFB ProtocolVersion");
		return n;
	}
	/* 3.4 and 3.6 (UltraVNC), 3.5 (spec: read as 3.3), 3.889 (Apple) */
	if (major == 3 && minor >= 3 && minor <= 6)
		c->minor = 3;
	else if (major == 3 && (minor == 7 || minor == 8))
		c->minor = (int)minor;
	else if (major == 3 && minor == 889)
		c->minor = 8;
	else {
		c->minor = 3;
		wr_u32(c, SEC_INVALID);
		wr_string(c, "Unsupported RFB protocol version");
		cl_linger(c, "unsupported RFB version");
		logx(c->srv, LOG_INFO, "peer=%s unsupported version %03u.%03u",
		    c->peer, major, minor);
		return rd_used(&r, n);
	}
	logx(c->srv, LOG_DEBUG, "peer=%s RFB %d.%d (asked %u.%u)", c->peer,
	    3, c->minor, major, minor);
	send_sectypes(c);
	return rd_used(&r, n);
}

static const struct sectype *const *
cl_sectypes(const struct client *c, int *n)
{
	const struct server *s = c->srv;

	if (c->ws != NULL) {
		*n = s->nsec_ws;
		return s->sec_ws;
	}
	*n = c->is_unix ? s->nsec_unix : s->nsec_tcp;
	return c->is_unix ? s->sec_unix : s->sec_tcp;
}

static void
send_sectypes(struct client *c)
{
	const struct sectype *const *list;
	uint8_t types[nitems(sectypes)];
	int i, j, k, n = 0;

	list = cl_sectypes(c, &k);
	if (c->minor == 3) {
		/* 3.3: the server picks; only None and VNC exist there */
		for (i = 0; i < k; i++)
			if (list[i]->subtype == 0 &&
			    (list[i]->type == SEC_NONE || list[i]->type == SEC_VNC))
				break;
		if (i == k) {
			wr_u32(c, SEC_INVALID);
			wr_string(c, "No security type offered to RFB 3.3 "
			    "viewers; use a viewer that speaks RFB 3.8");
			cl_linger(c, "RFB 3.3 viewer, nothing it can use");
			return;
		}
		wr_u32(c, (uint32_t)list[i]->type);
		sec_start(c, list[i]);
		return;
	}
	for (i = 0; i < k; i++) {	/* first occurrence order */
		for (j = 0; j < n; j++)
			if (types[j] == list[i]->type)
				break;
		if (j == n)
			types[n++] = (uint8_t)list[i]->type;
	}
	wr_u8(c, (uint8_t)n);
	wr_bytes(c, types, (size_t)n);
	c->state = ST_SECURITY;
	cl_expect(c, h_sectype, 1);
}

/* What the viewer chose, if it was offered to it (sub: VeNCrypt's). */
static const struct sectype *
sectype_offered(const struct client *c, uint32_t type, uint32_t sub)
{
	const struct sectype *const *list;
	int i, k;

	list = cl_sectypes(c, &k);
	for (i = 0; i < k; i++)
		if ((uint32_t)list[i]->type == type && (type != SEC_VENCRYPT ||
		    sub == 0 || (uint32_t)list[i]->subtype == sub))
			return list[i];
	return NULL;
}

static size_t
h_sectype(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	unsigned type = rd_u8(&r);
	const struct sectype *st = sectype_offered(c, type, 0);

	if (st != NULL) {
		if (type == SEC_VENCRYPT)
			vencrypt_start(c);
		else
			sec_start(c, st);
		return rd_used(&r, n);
	}
	/* QEMU and the spec: SecurityResult failed (+ reason in 3.8) */
	logx(c->srv, LOG_AUTH | LOG_WARNING, "auth peer=%s sec=%u result=fail "
	    "reason=type-not-offered", c->peer, type);
	wr_u32(c, 1);
	wr_failure_reason(c, "Security type not offered");
	cl_linger(c, "chose a security type that was not offered");
	return rd_used(&r, n);
}

/* A type's own exchange begins (for VeNCrypt: after the TLS handshake). */
static void
sec_start(struct client *c, const struct sectype *st)
{
	c->sec = st;
	logx(c->srv, LOG_DEBUG, "peer=%s security %s", c->peer, st->name);
	auth_begin(c);
}

/* -- VeNCrypt 0.2 (PROTOCOL 6.1): version, subtype, then TLS -- */

static void
vencrypt_start(struct client *c)
{
	c->state = ST_VENCRYPT;
	wr_u8(c, 0);
	wr_u8(c, 2);
	cl_expect(c, h_vencrypt_version, 2);
}

static size_t
h_vencrypt_version(struct client *c, uint8_t *p, size_t n)
{
	const struct sectype *const *list;
	struct rd r = rd_of(p, n);
	unsigned major = rd_u8(&r), minor = rd_u8(&r);
	int i, k, m = 0;

	if (major != 0 || minor != 2) {
		wr_u8(c, 1);
		cl_linger(c, "VeNCrypt version other than 0.2");
		return rd_used(&r, n);
	}
	list = cl_sectypes(c, &k);
	for (i = 0; i < k; i++)
		m += list[i]->type == SEC_VENCRYPT;
	wr_u8(c, 0);
	wr_u8(c, (uint8_t)m);
	for (i = 0; i < k; i++)
		if (list[i]->type == SEC_VENCRYPT)
			wr_u32(c, (uint32_t)list[i]->subtype);
	cl_expect(c, h_vencrypt_subtype, 4);
	return rd_used(&r, n);
}

static size_t
h_vencrypt_subtype(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	uint32_t sub = rd_u32(&r);
	const struct sectype *st = sub ? sectype_offered(c, SEC_VENCRYPT,
	    sub) : NULL;

	if (st == NULL) {
		logx(c->srv, LOG_AUTH | LOG_WARNING, "auth peer=%s sec=vencrypt"
		    "-%lu result=fail reason=subtype-not-offered", c->peer,
		    (unsigned long)sub);
		wr_u8(c, 0);
		cl_linger(c, "chose a VeNCrypt subtype that was not offered");
		return rd_used(&r, n);
	}
	if (st->tls == TLS_WSS) {
		/* Plain on wss: no ack byte and no TLS of its own (PROTOCOL
		 * 6.1); noVNC sends the credentials right behind the subtype */
		sec_start(c, st);
		return rd_used(&r, n);
	}
	if (r.n > 0) {	/* the viewer must wait for our answer */
		cl_fail(c, "data before the TLS handshake");
		return n;
	}
	c->sec = st;
	wr_u8(c, 1);
	tls_start(c);
	cl_flush(c);
	return rd_used(&r, n);
}

/* -- the decision: throttling, the ACL, the audit line, SecurityResult -- */

/*
 * Login throttling without lockout (OpenSSH PerSourcePenalties is the
 * model).  What counts is the attempt, not the answer: each failure from
 * an address (IPv6: its /64) makes that address's *next attempt* wait -
 * 250 ms, doubling per failure up to -o fail-delay - before the server
 * even starts its exchange (auth_begin()), and attempts from one address
 * take turns, so neither hanging up early nor opening connections in
 * parallel buys a guess.  A failure counts the moment it is decided; a
 * success clears nothing (a None login or another account from the same
 * address must not wipe a guesser's record); a quiet address is forgotten.
 * The answers themselves go at once, success and failure alike.  One
 * address never slows another.
 *
 * The same records bound the password hashing unauthenticated peers can
 * cause (PLAIN, LOGIN and the VeNCrypt Plain subtypes derive SCRAM keys
 * from the password: 42 ms of CPU at 65536 iterations): a budget per
 * address and one for all together, generic cell rate style, so that
 * viewers already in keep their latency.  SCRAM costs the server nothing
 * of the kind (it stores the derived keys).
 */

/* The key an address is remembered under: IPv6 by its /64. */
static void
addr_key(const char *addr, char *key, size_t len)
{
	struct in6_addr a6;

	if (inet_pton(AF_INET6, addr, &a6) == 1) {
		memset(a6.s6_addr + 8, 0, 8);
		inet_ntop(AF_INET6, &a6, key, (socklen_t)len);
		snprintf(key + strlen(key), len - strlen(key), "/64");
	} else {
		snprintf(key, len, "%s", addr);
	}
}

/* addr's record (made if asked: the quietest is forgotten for it). */
static struct addr_rec *
addr_rec(struct server *s, const char *addr, long long now, int make)
{
	char key[sizeof s->addrs[0].key];
	struct addr_rec *r;
	int i, old = 0;

	addr_key(addr, key, sizeof key);
	for (i = 0; i < s->naddrs; i++)
		if (strcmp(s->addrs[i].key, key) == 0) {
			r = &s->addrs[i];
			if (r->fails && now - r->last_fail > FAIL_FORGET_MS)
				r->fails = 0;
			return r;
		}
	if (!make)
		return NULL;
	if (s->naddrs < ADDR_RECS) {
		r = &s->addrs[s->naddrs++];
	} else {
		for (i = 1; i < s->naddrs; i++)
			if (s->addrs[i].last_seen < s->addrs[old].last_seen)
				old = i;
		r = &s->addrs[old];
	}
	memset(r, 0, sizeof *r);
	snprintf(r->key, sizeof r->key, "%s", key);
	r->last_seen = now;
	return r;
}

static long long
fail_delay(const struct server *s, unsigned fails)
{
	long long cap = (long long)s->fail_delay_cap * 1000;

	if (fails == 0)
		return 0;
	return fails > 16 || (FAIL_DELAY_MS << (fails - 1)) > cap ? cap :
	    FAIL_DELAY_MS << (fails - 1);
}

/* May c's attempt start now?  Else the moment it may (its turn). */
static long long
throttle_turn(struct server *s, const struct client *c, long long now)
{
	struct addr_rec *r = addr_rec(s, c->addr, now, 0);

	if (r == NULL || r->fails == 0)
		return now;
	if (r->next_ok > now)
		return r->next_ok;
	/* booked: a parallel attempt from here waits its turn */
	r->next_ok = now + fail_delay(s, r->fails);
	r->last_seen = now;
	return now;
}

/* A failure was decided: the address's next attempt waits longer. */
static void
throttle_fail(struct server *s, const struct client *c, long long now)
{
	struct addr_rec *r = addr_rec(s, c->addr, now, 1);
	long long t;

	if (r->fails < 30)
		r->fails++;
	r->last_fail = r->last_seen = now;
	t = now + fail_delay(s, r->fails);
	if (t > r->next_ok)
		r->next_ok = t;
}

/* GCRA: book `cost_us` of a budget whose burst is tau_us; 0 if booked,
 * else the time (us) at which it would be. */
static long long
gcra_book(long long *tat, long long now_us, long long cost_us, long long tau_us)
{
	if (*tat - tau_us > now_us)
		return *tat - tau_us;
	*tat = (*tat > now_us ? *tat : now_us) + cost_us;
	return 0;
}

/*
 * Before a password is hashed for an unauthenticated peer: 0 to go on,
 * else the client waits (gated) and its handler runs again later.  One
 * charge per login, whatever the mechanism's steps.
 */
static int
hash_gate(struct client *c)
{
	struct server *s = c->srv;
	long long now = mono_ms(), us = now * 1000, t = 0, cost;
	struct addr_rec *r;

	if (c->hash_paid || s->hash_rate == 0)
		return 0;
	cost = (long long)s->max_iter * 1000000 / s->hash_rate;
	r = addr_rec(s, c->addr, now, 1);
	/* the address first, then all: a flooder does not eat the total */
	if (r->hash_tat - HASH_TAU_ADDR_US > us)
		t = r->hash_tat - HASH_TAU_ADDR_US;
	else if ((t = gcra_book(&s->hash_tat, us, cost, HASH_TAU_US)) == 0)
		gcra_book(&r->hash_tat, us, 4 * cost, HASH_TAU_ADDR_US);
	if (t == 0) {
		c->hash_paid = 1;
		return 0;
	}
	c->gate_until = t / 1000 + 1;
	logx(s, LOG_DEBUG, "peer=%s password hashing waits %lld ms", c->peer,
	    c->gate_until - now);
	return 1;
}

/*
 * The chosen type's exchange starts (after TLS for VeNCrypt): now, or
 * when the address's turn comes (the client is not read meanwhile).
 */
static void
auth_begin(struct client *c)
{
	long long now = mono_ms(), t = throttle_turn(c->srv, c, now);

	c->state = ST_AUTH;
	if (t > now) {
		c->gate_until = t;
		c->gate_start = 1;
		logx(c->srv, LOG_DEBUG, "peer=%s login waits %lld ms (earlier "
		    "failures from its address)", c->peer, t - now);
		return;
	}
	c->sec->start(c);
}

/*
 * Every authentication ends here: one audit line, then SecurityResult
 * ok or "Authentication failed" - the same bytes whatever the reason.
 */
static void
auth_decide(struct client *c, const char *user, int ok, const char *why)
{
	char u[4 * USER_MAX + 8], m[4 * SASL_MECHNAME_MAX + 8];
	char d[4 * DN_MAX + 8];
	char rule[PATH_MAX + 16] = "-", reason[PATH_MAX + 64];
	enum acl_action act = ACL_DENY;
	int acl_ran = 0;

	if (ok) {
		act = acl_check(c->srv->acl, user ? user : "", &c->dnp, c->addr,
		    rule, sizeof rule);
		acl_ran = 1;
		if (act == ACL_DENY) {
			ok = 0;
			snprintf(reason, sizeof reason, "denied by %s", rule);
			why = reason;
		}
	}
	if (ok && user != NULL)
		snprintf(c->user, sizeof c->user, "%s", user);
	c->view_only = act == ACL_VIEW;
	if (acl_ran)	/* the ACL's verdict, else the authenticator's */
		logx(c->srv, LOG_AUTH | (ok ? LOG_NOTICE : LOG_WARNING),
		    "auth peer=%s sec=%s mech=%s user=%s%s%s ssf=%d result=%s "
		    "acl=%s rule=%s", c->peer, c->sec->name,
		    safe(c->mech, m, sizeof m), safe(user, u, sizeof u),
		    c->dn[0] ? " dn=" : "", c->dn[0] ? safe(c->dn, d,
		    sizeof d) : "", c->ssf, ok ? "ok" : "fail",
		    acl_action_name[act], rule);
	else
		logx(c->srv, LOG_AUTH | LOG_WARNING, "auth peer=%s sec=%s "
		    "mech=%s user=%s ssf=%d result=fail reason=%s", c->peer,
		    c->sec->name, safe(c->mech, m, sizeof m),
		    safe(user, u, sizeof u), c->ssf, why);
	if (!ok) {
		throttle_fail(c->srv, c, mono_ms());
		cl_reject(c, why);
		return;
	}
	c->authed = 1;
	/* RFB 3.3 and 3.7 send no SecurityResult for plain None */
	if (c->sec->type == SEC_NONE && c->minor < 8) {
		start_init(c);
		return;
	}
	wr_u32(c, 0);
	start_init(c);
}

/* -- security type None, and VeNCrypt X509None/TLSNone -- */

static void
auth_none(struct client *c)
{
	auth_decide(c, NULL, 1, NULL);	/* a certificate's DN is no name */
}

/* -- security type VNC authentication (DES challenge) -- */

static size_t
h_vnc_response(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	const uint8_t *resp = rd_bytes(&r, sizeof c->challenge);
	uint8_t want[sizeof c->challenge];
	int ok;

	des_encrypt(&c->srv->vnc_des, sizeof want, want, c->challenge);
	ok = resp != NULL && memeql_sec(want, resp, sizeof want);
	memset(want, 0, sizeof want);
	auth_decide(c, NULL, ok, "wrong VNC password");
	return rd_used(&r, n);
}

static void
auth_vnc(struct client *c)
{
	if (gnutls_rnd(GNUTLS_RND_NONCE, c->challenge, sizeof c->challenge)) {
		cl_fail(c, "no random bytes for the challenge");
		return;
	}
	c->state = ST_AUTH;
	wr_bytes(c, c->challenge, sizeof c->challenge);
	cl_expect(c, h_vnc_response, 16);
}

/*
 * -- SASL: RFB security type 20, also inside VeNCrypt X509SASL/TLSSASL --
 *
 * Wire (PROTOCOL.md 2): mechlist without NUL; mechname 1-100 bytes; data
 * fields carry length+1 and a trailing NUL, length 0 meaning NULL; each
 * reply ends with the complete byte; SecurityResult follows complete=1.
 * No SASL security layer is ever negotiated: GNU SASL can give none
 * worth having, and the viewers forbid one inside TLS (SASL-NOTES 0).
 */

/* Is name[0..n) one exact token of the comma-separated list? */
static int
mech_offered(const char *list, const char *name, size_t n)
{
	const char *item;
	size_t len;

	while (list_next(&list, &item, &len))
		if (len == n && memcmp(item, name, n) == 0)
			return 1;
	return 0;
}

/* What this client may choose: -m order, then the transport's rules. */
static void
sasl_mechlist(struct client *c)
{
	const struct server *s = c->srv;
	size_t off = 0;
	int i;

	c->mechlist[0] = '\0';
	for (i = 0; i < s->nmechs; i++) {
		const char *m = s->mechs[i];
		size_t n = strlen(m);

		/* passwords in the clear and channel bindings need TLS */
		if (!c->tls_up && (strcmp(m, "PLAIN") == 0 ||
		    strcmp(m, "LOGIN") == 0 || strstr(m, "-PLUS") != NULL))
			continue;
		if (off + (off > 0) + n > SASL_MECHLIST_MAX)
			break;
		off += (size_t)snprintf(c->mechlist + off,
		    sizeof c->mechlist - off, "%s%s", off ? "," : "", m);
	}
}

static size_t h_sasl_mechlen(struct client *, uint8_t *, size_t);
static size_t h_sasl_mechname(struct client *, uint8_t *, size_t);
static size_t h_sasl_datalen(struct client *, uint8_t *, size_t);
static size_t h_sasl_data(struct client *, uint8_t *, size_t);
static void sasl_reply(struct client *, int, const char *, size_t);

static void
auth_sasl(struct client *c)
{
	sasl_mechlist(c);
	if (c->mechlist[0] == '\0') {
		/* an empty list only ends in failure (QEMU 46c80446) */
		cl_fail(c, "no SASL mechanism may be offered on this transport");
		return;
	}
	c->state = ST_SASL;
	wr_string(c, c->mechlist);
	cl_expect(c, h_sasl_mechlen, 4);
}

static size_t
h_sasl_mechlen(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	uint32_t len = rd_u32(&r);

	if (len < 1 || len > SASL_MECHNAME_MAX) {
		cl_fail(c, "SASL mechanism name of %lu bytes (1-%d allowed)",
		    (unsigned long)len, SASL_MECHNAME_MAX);
		return n;
	}
	cl_expect(c, h_sasl_mechname, 4 + len);
	return 0;
}

static size_t
h_sasl_mechname(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	size_t len = rd_u32(&r);
	uint8_t *name = rd_bytes(&r, len);
	char plus[SASL_MECHNAME_MAX + 8], esc[4 * SASL_MECHNAME_MAX + 8];

	if (r.err || len > SASL_MECHNAME_MAX) {	/* h_sasl_mechlen saw to it */
		cl_fail(c, "internal: SASL mechanism name");
		return n;
	}
	/* a Cyrus viewer names SCRAM-X-PLUS "SCRAM-X" (see sasl_begin) */
	snprintf(plus, sizeof plus, "%.*s-PLUS", (int)len, (const char *)name);
	c->plus_only = !mech_offered(c->mechlist, (const char *)name, len) &&
	    len > 6 && memcmp(name, "SCRAM-", 6) == 0 &&
	    mech_offered(c->mechlist, plus, strlen(plus));
	if (!c->plus_only && !mech_offered(c->mechlist, (const char *)name,
	    len)) {
		memcpy(plus, name, len);
		plus[len] = '\0';
		cl_fail(c, "SASL mechanism '%s' was not offered", safe(plus,
		    esc, sizeof esc));
		return n;
	}
	memcpy(c->mech, name, len);
	c->mech[len] = '\0';
	cl_expect(c, h_sasl_datalen, 4);
	return rd_used(&r, n);
}

static size_t
h_sasl_datalen(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	uint32_t len = rd_u32(&r);

	if (len > SASL_DATA_MAX) {
		cl_fail(c, "SASL data of %lu bytes (limit %d)",
		    (unsigned long)len, SASL_DATA_MAX);
		return n;
	}
	cl_expect(c, h_sasl_data, 4 + len);
	return 0;
}

/* The session starts with the first data, which may need the -PLUS name. */
static int
sasl_begin(struct client *c, const char *in, size_t inlen)
{
	char plus[SASL_MECHNAME_MAX + 8];
	int r;

	/*
	 * Cyrus names the mechanism without -PLUS but sends a "p=" GS2
	 * header (cyrus-sasl #552): run the -PLUS mechanism if we offered it.
	 */
	if (in != NULL && inlen >= 2 && memcmp(in, "p=", 2) == 0 &&
	    strncmp(c->mech, "SCRAM-", 6) == 0 && !strstr(c->mech, "-PLUS")) {
		snprintf(plus, sizeof plus, "%s-PLUS", c->mech);
		if (strlen(plus) < sizeof c->mech &&
		    mech_offered(c->mechlist, plus, strlen(plus)))
			memcpy(c->mech, plus, strlen(plus) + 1);
	}
	if (c->plus_only && strstr(c->mech, "-PLUS") == NULL) {
		cl_fail(c, "SASL mechanism '%s' was not offered", c->mech);
		return -1;
	}
	if ((r = gsasl_server_start(c->srv->gsasl, c->mech, &c->sasl)) !=
	    GSASL_OK) {
		c->sasl = NULL;
		cl_fail(c, "SASL %s cannot start: %s", c->mech,
		    gsasl_strerror(r));
		return -1;
	}
	gsasl_session_hook_set(c->sasl, c);
	return 0;
}

/* After GSASL_OK: who is this, and may they be someone else? */
static void
sasl_done(struct client *c)
{
	const char *mech = gsasl_mechanism_name(c->sasl);
	int krb = strcmp(mech, "GSSAPI") == 0 || strcmp(mech, "GS2-KRB5") == 0;
	const char *id = gsasl_property_fast(c->sasl, krb ?
	    GSASL_GSSAPI_DISPLAY_NAME : GSASL_AUTHID);
	const char *authz = gsasl_property_fast(c->sasl, GSASL_AUTHZID);

	if (id == NULL || *id == '\0' || strlen(id) > USER_MAX)
		auth_decide(c, NULL, 0, "no usable identity");
	else if (authz != NULL && *authz != '\0' && strcmp(authz, id) != 0)
		auth_decide(c, id, 0, "asked to act as another identity");
	else {
		c->by_passwd = !krb;	/* SIGHUP re-checks these */
		auth_decide(c, id, 1, NULL);
	}
}

static size_t
h_sasl_data(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	size_t len = rd_u32(&r), inlen = 0, outlen = 0;
	uint8_t *data = rd_bytes(&r, len);
	const char *in = NULL;
	char *out = NULL;
	int st;

	if (r.err) {		/* h_sasl_datalen saw to it */
		cl_fail(c, "internal: SASL data");
		return n;
	}
	/* PLAIN and LOGIN: the password will be hashed (its turn first) */
	if (len > 1 && (strcmp(c->mech, "PLAIN") == 0 ||
	    strcmp(c->mech, "LOGIN") == 0) && hash_gate(c))
		return 0;
	if (len > 0) {
		/*
		 * The last byte is the pad: dropped, never trusted, and not
		 * required to be a NUL.  gtk-vnc and libvncclient send
		 * clientoutlen + 1 bytes straight from Cyrus's buffer; after
		 * a binary token (GSSAPI's wrapped layer reply, GS2-KRB5's
		 * empty final response) that byte is whatever followed it in
		 * memory (measured), so QEMU's 2024 check (1a225f57) would
		 * refuse real Kerberos logins.
		 */
		if (data[len - 1] != '\0')
			logx(c->srv, LOG_DEBUG, "peer=%s SASL pad byte 0x%02x "
			    "ignored", c->peer, data[len - 1]);
		data[len - 1] = '\0';
		in = (const char *)data;	/* non-NULL even when empty */
		inlen = len - 1;
	}
	if (c->sasl == NULL && sasl_begin(c, in, inlen) < 0)
		return rd_used(&r, n);
	st = gsasl_step(c->sasl, in, inlen, &out, &outlen);
	memset(data, 0, len);	/* PLAIN and LOGIN carry passwords */
	sasl_reply(c, st, out, outlen);
	gsasl_free(out);
	return rd_used(&r, n);
}

/* A step's answer: data and the complete byte, or the failure. */
static void
sasl_reply(struct client *c, int st, const char *out, size_t outlen)
{
	if (st != GSASL_OK && st != GSASL_NEEDS_MORE) {
		/* complete=1, then a failed SecurityResult (PROTOCOL 2.7) */
		wr_u32(c, 0);
		wr_u8(c, 1);
		auth_decide(c, gsasl_property_fast(c->sasl, GSASL_AUTHID), 0,
		    c->unknown_user ? "unknown user" : st ==
		    GSASL_AUTHENTICATION_ERROR ? "wrong password" :
		    gsasl_strerror_name(st));
		return;
	}
	if (out != NULL && outlen >= SASL_DATA_MAX) {
		cl_fail(c, "SASL reply of %zu bytes (limit %d)", outlen,
		    SASL_DATA_MAX);
		return;
	}
#ifdef HAVE_PAM
	if (st == GSASL_OK && c->pam != NULL && c->pam->deferred) {
		pam_submit(c);	/* PLAIN and LOGIN end without data */
		return;
	}
#endif
	if (out == NULL) {
		wr_u32(c, 0);
	} else {		/* the NUL always goes too (PROTOCOL 2.5) */
		wr_u32(c, (uint32_t)outlen + 1);
		wr_bytes(c, out, outlen);
		wr_u8(c, 0);
	}
	wr_u8(c, st == GSASL_OK);
	if (st == GSASL_NEEDS_MORE)
		cl_expect(c, h_sasl_datalen, 4);
	else
		sasl_done(c);
}

/* -- VeNCrypt X509Plain/TLSPlain: a user and password through GNU SASL PLAIN -- */
static size_t h_plain_creds(struct client *, uint8_t *, size_t);

static size_t
h_plain_lens(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	uint32_t ulen = rd_u32(&r), plen = rd_u32(&r);

	if (ulen > PLAIN_FIELD_MAX || plen > PLAIN_FIELD_MAX) {
		cl_fail(c, "VeNCrypt Plain lengths %lu/%lu (limit %d)",
		    (unsigned long)ulen, (unsigned long)plen, PLAIN_FIELD_MAX);
		return n;
	}
	cl_expect(c, h_plain_creds, 8 + (size_t)ulen + plen);
	return 0;
}

static size_t
h_plain_creds(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	size_t ulen = rd_u32(&r), plen = rd_u32(&r);
	uint8_t *user = rd_bytes(&r, ulen), *pass = rd_bytes(&r, plen);
	char token[1 + USER_MAX + 1 + PLAIN_FIELD_MAX], *out = NULL;
	size_t outlen, tlen = ulen + plen + 2;
	int st = GSASL_AUTHENTICATION_ERROR;

	if (r.err || plen > PLAIN_FIELD_MAX) {	/* h_plain_lens saw to it */
		cl_fail(c, "internal: VeNCrypt Plain fields");
		return n;
	}
	if (hash_gate(c))	/* the password will be hashed: its turn */
		return 0;
	if (memchr(user, 0, ulen) || memchr(pass, 0, plen) || ulen == 0 ||
	    ulen > USER_MAX) {
		memset(p, 0, rd_used(&r, n));
		auth_decide(c, NULL, 0, "bad user name or password bytes");
		return rd_used(&r, n);
	}
	/* RFC 4616: authzid NUL authcid NUL passwd */
	token[0] = '\0';
	memcpy(token + 1, user, ulen);
	token[1 + ulen] = '\0';
	memcpy(token + 2 + ulen, pass, plen);
	memset(p, 0, rd_used(&r, n));
	snprintf(c->mech, sizeof c->mech, "PLAIN");
	if (gsasl_server_start(c->srv->gsasl, "PLAIN", &c->sasl) == GSASL_OK) {
		gsasl_session_hook_set(c->sasl, c);
		st = gsasl_step(c->sasl, token, tlen, &out, &outlen);
		gsasl_free(out);
	} else {
		c->sasl = NULL;
	}
	memset(token + 2 + ulen, 0, plen);	/* the password */
#ifdef HAVE_PAM
	if (st == GSASL_OK && c->pam != NULL && c->pam->deferred)
		pam_submit(c);
	else
#endif
	if (st == GSASL_OK)
		sasl_done(c);
	else		/* the user as sent, for the log (escaped there) */
		auth_decide(c, token + 1, 0, c->unknown_user ?
		    "unknown user" : "wrong password");
	memset(token, 0, sizeof token);
	return rd_used(&r, n);
}

static void
auth_plain(struct client *c)
{
	c->state = ST_AUTH;
	cl_expect(c, h_plain_lens, 8);
}

/* ---------------------------------------------------------------------
 * Pixel formats.
 * ------------------------------------------------------------------- */

static const struct pixfmt native_pf = {
	32, 24, 0, 1, { 255, 255, 255 }, { 16, 8, 0 },
};

static int
host_little_endian(void)
{
	const uint16_t one = 1;

	return *(const uint8_t *)&one;
}

static int
bits_of_max(unsigned max)	/* k if max == 2^k - 1, else -1 */
{
	int k = 0;

	while (max & 1) {
		max >>= 1;
		k++;
	}
	return max == 0 && k > 0 ? k : -1;
}

/* NULL if the format is one we serve, else why not. */
static const char *
pixfmt_check(const struct pixfmt *pf)
{
	int i, k;

	if (pf->bpp != 8 && pf->bpp != 16 && pf->bpp != 32)
		return "bits-per-pixel is not 8, 16 or 32";
	if (!pf->truecolour)
		return "colour-map pixel formats are not supported";
	for (i = 0; i < 3; i++) {
		if ((k = bits_of_max(pf->max[i])) < 0)
			return "a colour maximum is not 2^n-1";
		if (pf->shift[i] + k > pf->bpp)
			return "a colour does not fit in the pixel";
	}
	return NULL;
}

static void
pixfmt_apply(struct client *c, const struct pixfmt *pf)
{
	unsigned i, v;

	c->pf = *pf;
	c->bytes_pp = pf->bpp / 8;
	for (i = 0; i < 3; i++)
		for (v = 0; v < 256; v++)
			c->tr[i][v] = (uint32_t)((v * pf->max[i] + 127) / 255)
			    << pf->shift[i];
	/* the source's XRGB words can be copied as they are */
	c->native = pf->bpp == 32 && pf->max[0] == 255 && pf->max[1] == 255 &&
	    pf->max[2] == 255 && pf->shift[0] == 16 && pf->shift[1] == 8 &&
	    pf->shift[2] == 0 && (pf->bigendian == 0) == host_little_endian();
}

static int
pixfmt_same(const struct pixfmt *a, const struct pixfmt *b)
{
	return a->bpp == b->bpp && a->depth == b->depth &&
	    a->bigendian == b->bigendian && a->max[0] == b->max[0] &&
	    a->max[1] == b->max[1] && a->max[2] == b->max[2] &&
	    a->shift[0] == b->shift[0] && a->shift[1] == b->shift[1] &&
	    a->shift[2] == b->shift[2];
}

static void
wr_pixfmt(struct client *c, const struct pixfmt *pf)
{
	wr_u8(c, pf->bpp);
	wr_u8(c, pf->depth);
	wr_u8(c, pf->bigendian);
	wr_u8(c, pf->truecolour);
	wr_u16(c, pf->max[0]);
	wr_u16(c, pf->max[1]);
	wr_u16(c, pf->max[2]);
	wr_u8(c, pf->shift[0]);
	wr_u8(c, pf->shift[1]);
	wr_u8(c, pf->shift[2]);
	wr_bytes(c, "\0\0\0", 3);
}

/*
 * One translation path for every encoder: source XRGB pixels become
 * client pixel values (px_values, per-channel lookup tables), values
 * become bytes in the client's byte order (put_values).  Encoders that
 * analyse content (ZRLE, Hextile) work on values, so colours that the
 * viewer's format merges (16 and 8 bpp) count as one.
 */
static void
px_values(const struct client *c, uint32_t *v, const uint32_t *src, int n)
{
	const struct pixfmt *pf = &c->pf;
	int x;

	if (pf->max[0] == 255 && pf->max[1] == 255 && pf->max[2] == 255 &&
	    pf->shift[0] == 16 && pf->shift[1] == 8 && pf->shift[2] == 0) {
		for (x = 0; x < n; x++)
			v[x] = src[x] & 0xffffff;
		return;
	}
	for (x = 0; x < n; x++) {
		uint32_t p = src[x];

		v[x] = c->tr[0][p >> 16 & 0xff] | c->tr[1][p >> 8 & 0xff] |
		    c->tr[2][p & 0xff];
	}
}

/* A w x h tile of source pixels as client pixel values. */
static void
tile_values(const struct client *c, uint32_t *v, const uint32_t *src,
    int stride, int w, int h)
{
	int y;

	for (y = 0; y < h; y++, src += stride, v += w)
		px_values(c, v, src, w);
}

/*
 * n values as pixels of `bytes` bytes in the client's byte order; with 3
 * bytes, of the value shifted right by `shift` (a ZRLE CPIXEL).
 */
static uint8_t *
put_values(const struct client *c, uint8_t *p, const uint32_t *v, int n,
    int bytes, int shift)
{
	int i, be = c->pf.bigendian;

	switch (bytes * 2 + be) {
	case 2:
	case 3:
		for (i = 0; i < n; i++)
			*p++ = (uint8_t)v[i];
		break;
	case 4:
		for (i = 0; i < n; i++, p += 2) {
			p[0] = (uint8_t)v[i];
			p[1] = (uint8_t)(v[i] >> 8);
		}
		break;
	case 5:
		for (i = 0; i < n; i++, p += 2) {
			p[0] = (uint8_t)(v[i] >> 8);
			p[1] = (uint8_t)v[i];
		}
		break;
	case 6:
		for (i = 0; i < n; i++, p += 3) {
			uint32_t u = v[i] >> shift;

			p[0] = (uint8_t)u;
			p[1] = (uint8_t)(u >> 8);
			p[2] = (uint8_t)(u >> 16);
		}
		break;
	case 7:
		for (i = 0; i < n; i++, p += 3) {
			uint32_t u = v[i] >> shift;

			p[0] = (uint8_t)(u >> 16);
			p[1] = (uint8_t)(u >> 8);
			p[2] = (uint8_t)u;
		}
		break;
	case 8:
		for (i = 0; i < n; i++, p += 4) {
			p[0] = (uint8_t)v[i];
			p[1] = (uint8_t)(v[i] >> 8);
			p[2] = (uint8_t)(v[i] >> 16);
			p[3] = (uint8_t)(v[i] >> 24);
		}
		break;
	default:
		for (i = 0; i < n; i++, p += 4) {
			p[0] = (uint8_t)(v[i] >> 24);
			p[1] = (uint8_t)(v[i] >> 16);
			p[2] = (uint8_t)(v[i] >> 8);
			p[3] = (uint8_t)v[i];
		}
	}
	return p;
}

/* n source pixels as client pixel bytes at dst (Raw, Cursor). */
static void
put_pixels(const struct client *c, uint8_t *dst, const uint32_t *src, int n)
{
	uint32_t v[256];
	int k;

	if (c->native) {
		memcpy(dst, src, (size_t)n * 4);
		return;
	}
	for (; n > 0; n -= k, src += k) {
		k = n < (int)nitems(v) ? n : (int)nitems(v);
		px_values(c, v, src, k);
		dst = put_values(c, dst, v, k, c->bytes_pp, 0);
	}
}

/* ---------------------------------------------------------------------
 * Encoders.
 *
 * An update is the client's dirty tiles sorted by what they hold and
 * merged into rectangles of one kind (collect_rects(), in Damage and
 * updates).  Each rectangle gets a plan, made once for its content and
 * shared by every viewer (plan_get()): a sub classed by its colours -
 * solid, mono, indexed (up to PAL_MAX colours) or full colour, with a
 * note whether the gradient filter predicts it well.  (A plan has room
 * for several subs; today it has one.)  For every sub and viewer,
 * choose() picks the cheapest way to send it among the encodings the
 * viewer announced: CPU time plus bytes over the viewer's link rate, both
 * estimated from what the encoders did so far, with the viewer's order
 * breaking near-ties.  JPEG only where the viewer sent a quality level,
 * the sub has many colours and is not a lossless refresh - and, on a link
 * of STILL_LOSSY_KBIT or more, only where the screen moves (most of its
 * tiles changed twice within MOVING_MS): a still area there goes exact at
 * once, instead of blurred and then exact 50 ms later.
 *
 * What an encoder makes is kept with the sub per variant (encoding, pixel
 * format, zlib level, quality), so every viewer in step gets the same
 * bytes by memcpy: a Tight rectangle resets the zlib stream it uses, a
 * ZRLE rectangle is a fresh raw deflate ending in a sync flush - both
 * valid in any viewer's stream at any point.  Only Raw goes straight into
 * the queue (a copy of it costs what the encoding does).  Encoders work
 * on the source's XRGB pixels and translate through px_values() and
 * put_values(), or for Tight's 3-byte TPIXELs take the channels as they
 * are.
 * ------------------------------------------------------------------- */

static void
wr_rect_header(struct client *c, int x, int y, int w, int h, int32_t enc)
{
	wr_u16(c, (uint16_t)x);
	wr_u16(c, (uint16_t)y);
	wr_u16(c, (uint16_t)w);
	wr_u16(c, (uint16_t)h);
	wr_u32(c, (uint32_t)enc);
}

/* Room for n more bytes at the end of an encoder's buffer (not counted). */
static uint8_t *
eb_room(struct buf *b, size_t n)
{
	return buf_reserve(b, n) < 0 ? NULL : b->data + b->len;
}

static int
eb_bytes(struct buf *b, const void *data, size_t n)
{
	uint8_t *p = eb_room(b, n);

	if (p == NULL)
		return -1;
	if (n > 0)
		memcpy(p, data, n);
	b->len += n;
	return 0;
}

static int
eb_rect_header(struct buf *b, const struct rect *r, int32_t enc)
{
	uint8_t h[12];

	h[0] = (uint8_t)(r->x >> 8);
	h[1] = (uint8_t)r->x;
	h[2] = (uint8_t)(r->y >> 8);
	h[3] = (uint8_t)r->y;
	h[4] = (uint8_t)(r->w >> 8);
	h[5] = (uint8_t)r->w;
	h[6] = (uint8_t)(r->h >> 8);
	h[7] = (uint8_t)r->h;
	h[8] = (uint8_t)((uint32_t)enc >> 24);
	h[9] = (uint8_t)((uint32_t)enc >> 16);
	h[10] = (uint8_t)((uint32_t)enc >> 8);
	h[11] = (uint8_t)enc;
	return eb_bytes(b, h, sizeof h);
}

static void
enc_raw(struct client *c, const struct rect *r)
{
	const struct fb_frame *f = &c->srv->frame;
	size_t row = (size_t)r->w * c->bytes_pp;
	uint8_t *p;
	int y;

	wr_rect_header(c, r->x, r->y, r->w, r->h, ENC_RAW);
	if ((p = wr_space(c, row * r->h)) == NULL)
		return;
	for (y = 0; y < r->h; y++, p += row)
		put_pixels(c, p,
		    f->pixels + (size_t)(r->y + y) * f->stride + r->x, r->w);
}

/* -- palettes: colours in order of appearance, and a hash to find them -- */

static void
pal_reset(struct encscratch *e)
{
	e->npal = 0;
	if (++e->now == 0) {	/* stamps wrapped: forget them all */
		memset(e->stamp, 0, sizeof e->stamp);
		e->now = 1;
	}
}

static unsigned
pal_slot(const struct encscratch *e, uint32_t v)
{
	unsigned h = (v * 2654435761u) >> 22 & (PAL_HASH - 1);

	/* at most PAL_MAX + 1 slots are taken: a free one is near */
	while (e->stamp[h] == e->now && e->key[h] != v)
		h = (h + 1) & (PAL_HASH - 1);
	return h;
}

/* Add v unless known; the palette stops growing one past max. */
static void
pal_add(struct encscratch *e, uint32_t v, int max)
{
	unsigned h;

	if (e->npal > max)
		return;
	h = pal_slot(e, v);
	if (e->stamp[h] == e->now)
		return;
	e->stamp[h] = e->now;
	e->key[h] = v;
	e->idx[h] = (uint16_t)e->npal;
	e->pal[e->npal++] = v;
}

static unsigned
pal_index(const struct encscratch *e, uint32_t v)
{
	return e->idx[pal_slot(e, v)];
}

/* -- ZRLE (RFB 7.7.6) -- */

static const char *const ztile_name[] = {
	"solid", "packed", "palette-rle", "rle", "raw",
};

/*
 * CPIXEL: 3 bytes when a 32-bit true-colour pixel of depth <= 24 has all
 * its colour bits in the low or in the high three bytes; the RFB text.
 * (gtk-vnc and libvncclient look at the shifts only; for the depth-24
 * formats viewers ask for, the two readings agree.)
 */
static int
cpixel_bytes(const struct pixfmt *pf, int *shift)
{
	uint32_t mask = 0;
	int i;

	*shift = 0;
	if (pf->bpp != 32)
		return pf->bpp / 8;
	for (i = 0; i < 3; i++)
		mask |= (uint32_t)pf->max[i] << pf->shift[i];
	if (pf->depth > 24)
		return 4;
	if ((mask & 0xff000000) == 0)
		return 3;
	if ((mask & 0xff) == 0) {
		*shift = 8;
		return 3;
	}
	return 4;
}

/* Bytes of a run length: 255s, then the rest of length - 1. */
static uint8_t *
put_runlength(uint8_t *p, int len)
{
	for (len--; len >= 255; len -= 255)
		*p++ = 255;
	*p++ = (uint8_t)len;
	return p;
}

/* What a tile is made of, and the cheapest way to send it. */
struct zplan {
	int kind;		/* ZT_* */
	int bits;		/* packed palette: bits per pixel */
	int photo;		/* more colours than a palette holds */
};

/*
 * Count runs and colours in one pass (the palette lands in e), price
 * every subencoding, pick the cheapest; raw (1 + w * h * cb) is always
 * a candidate, so no tile is bigger.
 */
static void
zrle_analyse(struct encscratch *e, const uint32_t *v, int w, int h, int cb,
    struct zplan *zp)
{
	size_t n = (size_t)w * h, runs = 0, singles = 0, lenbytes = 0;
	size_t best, cost, i, start = 0;

	pal_reset(e);
	pal_add(e, v[0], ZRLE_PALETTE_MAX);
	for (i = 1; i <= n; i++) {
		size_t len;

		if (i < n && v[i] == v[start])
			continue;
		len = i - start;
		runs++;
		singles += len == 1;
		lenbytes += (len - 1) / 255 + 1;
		if (i < n) {
			start = i;
			pal_add(e, v[i], ZRLE_PALETTE_MAX);
		}
	}
	zp->kind = ZT_RAW;
	zp->bits = 0;
	best = 1 + n * cb;
	if ((cost = 1 + runs * cb + lenbytes) < best) {
		best = cost;
		zp->kind = ZT_RLE;
	}
	if (e->npal <= ZRLE_PALETTE_MAX &&
	    (cost = 1 + e->npal * cb + runs + lenbytes - singles) < best) {
		best = cost;
		zp->kind = ZT_PRLE;
	}
	if (e->npal <= ZRLE_PACKED_MAX) {
		int b = e->npal <= 2 ? 1 : e->npal <= 4 ? 2 : 4;

		if (1 + e->npal * cb + h * (((size_t)w * b + 7) / 8) < best) {
			zp->kind = ZT_PACKED;
			zp->bits = b;
		}
	}
	if (e->npal == 1)
		zp->kind = ZT_SOLID;
	zp->photo = e->npal > ZRLE_PALETTE_MAX;
}

/* Packed palette pixels: rows of bits-wide indexes, each row whole bytes. */
static uint8_t *
zrle_packed(const struct encscratch *e, uint8_t *p, const uint32_t *v, int w,
    int h, int bits)
{
	int x, y;

	for (y = 0; y < h; y++) {
		unsigned acc = 0, nbits = 0;

		for (x = 0; x < w; x++) {
			acc = acc << bits | pal_index(e, *v++);
			if ((nbits += (unsigned)bits) == 8) {
				*p++ = (uint8_t)acc;
				acc = nbits = 0;
			}
		}
		if (nbits > 0)	/* rows end on a byte boundary */
			*p++ = (uint8_t)(acc << (8 - nbits));
	}
	return p;
}

/* Runs: of pixels (RLE), or of palette indexes (palette RLE). */
static uint8_t *
zrle_runs(const struct client *c, const struct encscratch *e, uint8_t *p,
    const uint32_t *v, size_t n, int cb, int cshift, int palette)
{
	size_t i, start;

	for (i = 1, start = 0; i <= n; i++) {
		int len;

		if (i < n && v[i] == v[start])
			continue;
		len = (int)(i - start);
		if (!palette) {
			p = put_values(c, p, v + start, 1, cb, cshift);
			p = put_runlength(p, len);
		} else if (len == 1) {
			*p++ = (uint8_t)pal_index(e, v[start]);
		} else {
			*p++ = (uint8_t)(128 | pal_index(e, v[start]));
			p = put_runlength(p, len);
		}
		start = i;
	}
	return p;
}

/* Write the tile as planned; returns its size. */
static size_t
zrle_emit(const struct client *c, const struct encscratch *e,
    const uint32_t *v, int w, int h, int cb, int cshift,
    const struct zplan *zp, uint8_t *out)
{
	size_t n = (size_t)w * h;
	uint8_t *p = out;

	switch (zp->kind) {
	case ZT_SOLID:
		*p++ = 1;
		p = put_values(c, p, v, 1, cb, cshift);
		break;
	case ZT_PACKED:
		*p++ = (uint8_t)e->npal;
		p = put_values(c, p, e->pal, e->npal, cb, cshift);
		p = zrle_packed(e, p, v, w, h, zp->bits);
		break;
	case ZT_PRLE:
		*p++ = (uint8_t)(128 + e->npal);
		p = put_values(c, p, e->pal, e->npal, cb, cshift);
		p = zrle_runs(c, e, p, v, n, cb, cshift, 1);
		break;
	case ZT_RLE:
		*p++ = 128;
		p = zrle_runs(c, e, p, v, n, cb, cshift, 0);
		break;
	default:
		*p++ = 0;
		p = put_values(c, p, v, (int)n, cb, cshift);
	}
	return (size_t)(p - out);
}

/*
 * The server's deflate streams, one zlib (Tight) and one raw (ZRLE),
 * reset for every rectangle: a rectangle's bytes then depend on nothing
 * sent before, so every viewer can be given the same ones.  A fresh
 * stream's level is set before any input; zlib before 1.2.12 refuses
 * that after a reset, so the stream is then made anew.
 */
static z_stream *
zstream(struct encscratch *e, int raw, int level)
{
	z_stream **zp = raw ? &e->zraw : &e->zlib, *z = *zp;

	if (z != NULL) {
		z->next_out = NULL;
		z->avail_out = 0;
		if (deflateReset(z) == Z_OK &&
		    deflateParams(z, level, Z_DEFAULT_STRATEGY) == Z_OK)
			return z;
		deflateEnd(z);
	} else if ((z = calloc(1, sizeof *z)) == NULL) {
		return NULL;
	}
	if (deflateInit2(z, level, Z_DEFLATED, raw ? -15 : 15, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK) {
		free(z);
		*zp = NULL;
		return NULL;
	}
	*zp = z;
	return z;
}

/* Feed n bytes through z, output appended to b; -1 on failure. */
static int
deflate_into(z_stream *z, struct buf *b, const uint8_t *in, size_t n,
    int flush)
{
	int r;

	z->next_in = (Bytef *)(uintptr_t)in;	/* zlib does not write it */
	z->avail_in = (uInt)n;
	do {
		if (eb_room(b, ZOUT_CHUNK) == NULL)
			return -1;
		z->next_out = b->data + b->len;
		z->avail_out = (uInt)(b->cap - b->len);
		r = deflate(z, flush);
		b->len = (size_t)(z->next_out - b->data);
		/* every turn consumes input or fills the room; Z_BUF_ERROR
		 * is "nothing left to do" only once the input is gone */
		if (r != Z_OK && !(r == Z_BUF_ERROR && z->avail_in == 0))
			return -1;
	} while (z->avail_in > 0 || z->avail_out == 0);
	return 0;
}

/*
 * Move a stream in use to another level.  deflateParams() first finishes
 * what the old level holds back, asking for more room with Z_BUF_ERROR
 * until it is out; its bytes belong to this rectangle like the rest.
 */
static int
deflate_level(z_stream *z, struct buf *b, int level)
{
	int r = Z_BUF_ERROR, turns;

	for (turns = 0; turns < 16 && r == Z_BUF_ERROR; turns++) {
		if (eb_room(b, ZOUT_CHUNK) == NULL)
			return -1;
		z->next_in = NULL;
		z->avail_in = 0;
		z->next_out = b->data + b->len;
		z->avail_out = (uInt)(b->cap - b->len);
		r = deflateParams(z, level, Z_DEFAULT_STRATEGY);
		b->len = (size_t)(z->next_out - b->data);
	}
	return r == Z_OK ? 0 : -1;
}

/*
 * The viewer's own stream k (0: ZRLE's raw deflate, 1-3: Tight's streams
 * of those numbers) at this level, made on first use; a level change
 * may flush what the old one held, into b.  ZRLE's is reset after shared
 * rectangles went out: its history must be what the viewer's inflater
 * saw last, and theirs came in between.
 */
static z_stream *
own_stream(struct client *c, int k, int level, struct buf *b)
{
	z_stream *z = c->own[k];

	if (z == NULL) {
		if ((z = calloc(1, sizeof *z)) == NULL)
			return NULL;
		if (deflateInit2(z, level, Z_DEFLATED, k == 0 ? -OWN_WBITS :
		    OWN_WBITS, OWN_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK) {
			free(z);
			return NULL;
		}
		c->own[k] = z;
		c->own_level[k] = (uint8_t)level;
		return z;
	}
	if (k == 0 && c->own_stale) {
		if (deflateReset(z) != Z_OK)
			return NULL;
		c->own_stale = 0;
	}
	if (c->own_level[k] != level) {
		if (deflate_level(z, b, level) < 0)
			return NULL;
		c->own_level[k] = (uint8_t)level;
	}
	return z;
}

/*
 * A ZRLE rectangle: its 64x64 tiles through a fresh raw deflate (or the
 * viewer's own, for a small one).  Tiles
 * with more colours than a ZRLE palette holds (photos, gradients: sent
 * raw, or as runs of one or two pixels) are what deflate gains least on
 * and spends most on, so at the speed levels (the variant's "store")
 * they go in stored blocks, switching the level only where such a
 * stretch of tiles starts or ends.
 */
static int
enc_zrle(struct client *c, struct sub *sb, const struct variant *v,
    struct buf *b, struct encoded *en)
{
	struct server *s = c->srv;
	const struct fb_frame *f = &s->frame;
	struct encscratch *e = &s->enc;
	const struct rect *r = &sb->r;
	int cb, cshift, tx, ty, level = v->level;
	size_t lenpos, n;
	z_stream *z;

	if (eb_rect_header(b, r, ENC_ZRLE) < 0 || eb_bytes(b, "\0\0\0\0", 4) < 0)
		return -1;
	lenpos = b->len;
	if ((z = v->own ? own_stream(c, 0, level, b) : zstream(e, 1,
	    level)) == NULL)
		return -1;
	cb = cpixel_bytes(&c->pf, &cshift);
	for (ty = r->y; ty < r->y + r->h; ty += ZRLE_TILE)
		for (tx = r->x; tx < r->x + r->w; tx += ZRLE_TILE) {
			int w = r->x + r->w - tx, h = r->y + r->h - ty, want;
			struct zplan zp;
			size_t len;

			if (w > ZRLE_TILE)
				w = ZRLE_TILE;
			if (h > ZRLE_TILE)
				h = ZRLE_TILE;
			tile_values(c, e->px, f->pixels + (size_t)ty *
			    f->stride + tx, f->stride, w, h);
			zrle_analyse(e, e->px, w, h, cb, &zp);
			len = zrle_emit(c, e, e->px, w, h, cb, cshift, &zp,
			    e->zslot);
			en->ztiles[zp.kind]++;
			want = zp.photo && v->store ? 0 : v->level;
			if ((want != level && deflate_level(z, b, want) < 0) ||
			    deflate_into(z, b, e->zslot, len, Z_NO_FLUSH) < 0)
				return -1;
			level = want;
			if (v->own)
				c->own_level[0] = (uint8_t)level;
		}
	/* a sync flush per rectangle: the viewer decodes it without waiting
	 * for more, and its stream goes on with the next one */
	if (deflate_into(z, b, NULL, 0, Z_SYNC_FLUSH) < 0)
		return -1;
	n = b->len - lenpos;
	b->data[lenpos - 4] = (uint8_t)(n >> 24);
	b->data[lenpos - 3] = (uint8_t)(n >> 16);
	b->data[lenpos - 2] = (uint8_t)(n >> 8);
	b->data[lenpos - 1] = (uint8_t)n;
	return 0;
}

/* -- Hextile (RFB 7.7.4) -- */

enum {
	HT_RAW = 1, HT_BG = 2, HT_FG = 4, HT_SUBRECTS = 8, HT_COLOURED = 16,
};

/* What the viewer remembers from the previous tile of this rectangle. */
struct hexstate {
	uint32_t bg, fg;
	int bg_ok, fg_ok;
};

/* A tile's colours: raw if more than HEXTILE_COLOURS, else the most
 * common as background and, with two, the other as foreground. */
struct hexplan {
	uint32_t bg, fg;
	int ncol;		/* > HEXTILE_COLOURS: send it raw */
};

static void
hextile_analyse(const uint32_t *v, int w, int h, struct hexplan *hp)
{
	uint32_t col[HEXTILE_COLOURS];
	unsigned cnt[HEXTILE_COLOURS];
	int ncol = 0, last = 0, i;

	for (i = 0; i < w * h; i++) {
		if (ncol > 0 && v[i] == col[last]) {
			cnt[last]++;
			continue;
		}
		for (last = 0; last < ncol && col[last] != v[i]; last++)
			;
		if (last == ncol) {
			if (ncol == HEXTILE_COLOURS) {
				hp->ncol = ncol + 1;	/* too many: raw */
				return;
			}
			col[ncol] = v[i];
			cnt[ncol++] = 0;
		}
		cnt[last]++;
	}
	for (i = 1, last = 0; i < ncol; i++)
		if (cnt[i] > cnt[last])
			last = i;
	hp->ncol = ncol;
	hp->bg = col[last];
	hp->fg = ncol == 2 ? col[!last] : 0;
}

static size_t
hextile_raw(const struct client *c, const uint32_t *v, int w, int h,
    struct hexstate *hs, uint8_t *out)
{
	/* RFB: after a raw tile the colours must be given again */
	hs->bg_ok = hs->fg_ok = 0;
	*out = HT_RAW;
	return (size_t)(put_values(c, out + 1, v, w * h, c->bytes_pp, 0) - out);
}

/*
 * Subrectangles of the non-background colours, found greedily: from each
 * uncovered pixel, as far right as the colour goes, then down while the
 * whole run repeats.  Their bytes go to sub; -1 once they would cost as
 * much as raw.
 */
static int
hextile_subrects(const struct client *c, const uint32_t *v, int w, int h,
    const struct hexplan *hp, uint8_t *sub, size_t *sublen)
{
	uint16_t done[HEXTILE_TILE];
	size_t raw = 1 + (size_t)w * h * c->bytes_pp;
	size_t per = hp->ncol == 2 ? 2 : (size_t)c->bytes_pp + 2;
	uint8_t *q = sub;
	int nsub = 0, x, y;

	memset(done, 0, sizeof done);
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++) {
			const uint32_t *row = v + y * w;
			uint32_t k = row[x];
			int x1, y1, j;
			uint16_t bits;

			if (k == hp->bg || (done[y] >> x & 1))
				continue;
			for (x1 = x + 1; x1 < w && row[x1] == k &&
			    !(done[y] >> x1 & 1); x1++)
				;
			bits = (uint16_t)(((1u << (x1 - x)) - 1) << x);
			for (y1 = y + 1; y1 < h && !(done[y1] & bits); y1++) {
				for (j = x; j < x1 && v[y1 * w + j] == k; j++)
					;
				if (j < x1)
					break;
			}
			if ((size_t)(q - sub) + per + 1 + 2 *
			    (size_t)c->bytes_pp >= raw || nsub == 255)
				return -1;
			for (j = y; j < y1; j++)
				done[j] |= bits;
			if (hp->ncol > 2)
				q = put_values(c, q, &k, 1, c->bytes_pp, 0);
			*q++ = (uint8_t)(x << 4 | y);
			*q++ = (uint8_t)((x1 - x - 1) << 4 | (y1 - y - 1));
			nsub++;
		}
	*sublen = (size_t)(q - sub);
	return nsub;
}

/* One tile as planned, or raw where that is no dearer; returns its size. */
static size_t
hextile_emit(const struct client *c, const uint32_t *v, int w, int h,
    const struct hexplan *hp, struct hexstate *hs, uint8_t *out)
{
	uint8_t sub[HEXTILE_TILE * HEXTILE_TILE * 4 + 8], *p = out + 1;
	size_t sublen = 0;
	int b = c->bytes_pp, nsub;

	if (hp->ncol > HEXTILE_COLOURS ||
	    (nsub = hextile_subrects(c, v, w, h, hp, sub, &sublen)) < 0)
		return hextile_raw(c, v, w, h, hs, out);
	*out = 0;
	if (!hs->bg_ok || hs->bg != hp->bg) {
		*out |= HT_BG;
		p = put_values(c, p, &hp->bg, 1, b, 0);
	}
	if (nsub > 0 && hp->ncol == 2 && (!hs->fg_ok || hs->fg != hp->fg)) {
		*out |= HT_FG;
		p = put_values(c, p, &hp->fg, 1, b, 0);
		hs->fg = hp->fg;
		hs->fg_ok = 1;
	}
	if (nsub > 0) {
		*out |= HT_SUBRECTS;
		*p++ = (uint8_t)nsub;
		if (hp->ncol > 2) {
			*out |= HT_COLOURED;
			hs->fg_ok = 0;	/* viewers differ in what stays */
		}
		memcpy(p, sub, sublen);
		p += sublen;
	}
	hs->bg = hp->bg;
	hs->bg_ok = 1;
	return (size_t)(p - out);
}

static int
enc_hextile(struct client *c, struct sub *sb,
    const struct variant *v, struct buf *b, struct encoded *en)
{
	struct server *s = c->srv;
	const struct fb_frame *f = &s->frame;
	const struct rect *r = &sb->r;
	size_t ntiles = (size_t)((r->w + HEXTILE_TILE - 1) / HEXTILE_TILE) *
	    ((r->h + HEXTILE_TILE - 1) / HEXTILE_TILE);
	struct hexstate hs = { 0, 0, 0, 0 };
	struct hexplan hp;
	uint8_t *p;
	int tx, ty;

	(void)v;
	(void)en;
	/* no tile is bigger than raw with its subencoding byte */
	if (eb_rect_header(b, r, ENC_HEXTILE) < 0 || (p = eb_room(b, ntiles +
	    (size_t)r->w * r->h * c->bytes_pp)) == NULL)
		return -1;
	for (ty = 0; ty < r->h; ty += HEXTILE_TILE)
		for (tx = 0; tx < r->w; tx += HEXTILE_TILE) {
			int w = r->w - tx < HEXTILE_TILE ? r->w - tx :
			    HEXTILE_TILE;
			int h = r->h - ty < HEXTILE_TILE ? r->h - ty :
			    HEXTILE_TILE;

			tile_values(c, s->enc.px, f->pixels +
			    (size_t)(r->y + ty) * f->stride + r->x + tx,
			    f->stride, w, h);
			hextile_analyse(s->enc.px, w, h, &hp);
			p += hextile_emit(c, s->enc.px, w, h, &hp, &hs, p);
		}
	b->len = (size_t)(p - b->data);
	return 0;
}

/* -- Tight (RFB 7.7.5, the TightVNC/TigerVNC dialect) -- */

enum {
	TIGHT_FILL = 0x80, TIGHT_JPEG = 0x90, TIGHT_EXPLICIT = 0x40,
	TF_COPY = 0, TF_PALETTE = 1, TF_GRADIENT = 2,
};
/* the zlib streams: 0 for shared rectangles (reset by each), 1-3 the
 * viewer's own, by kind of data */
enum { TS_SHARED = 0, TS_MONO = 1, TS_INDEXED = 2, TS_FULL = 3 };

/*
 * TPIXEL: 3 bytes (red, green, blue) for 32 bpp, depth 24 and 8-bit
 * channels, else the pixel as it is.  gtk-vnc decides by depth 24 alone,
 * libvncclient by depth and the maxima: a depth-24 format without 8-bit
 * channels would be read differently by the two, so it gets no Tight.
 */
static int
tpixel_bytes(const struct pixfmt *pf)
{
	return pf->bpp == 32 && pf->depth == 24 && pf->max[0] == 255 &&
	    pf->max[1] == 255 && pf->max[2] == 255 ? 3 : pf->bpp / 8;
}

static int
tight_usable(const struct pixfmt *pf)
{
	return pf->depth != 24 || tpixel_bytes(pf) == 3;
}

/* n source pixels as TPIXELs */
static uint8_t *
put_tpixels(const struct client *c, uint8_t *p, const uint32_t *src, int n)
{
	uint32_t v[256];
	int i, k;

	if (tpixel_bytes(&c->pf) == 3) {
		for (i = 0; i < n; i++, p += 3) {
			p[0] = (uint8_t)(src[i] >> 16);
			p[1] = (uint8_t)(src[i] >> 8);
			p[2] = (uint8_t)src[i];
		}
		return p;
	}
	for (; n > 0; n -= k, src += k) {
		k = n < (int)nitems(v) ? n : (int)nitems(v);
		px_values(c, v, src, k);
		p = put_values(c, p, v, k, c->bytes_pp, 0);
	}
	return p;
}

/* A compact length (1 to 3 bytes, 7 bits each, the last 8). */
static int
eb_compact(struct buf *b, size_t n)
{
	uint8_t l[3];
	size_t k = 0;

	l[k++] = (uint8_t)(n & 0x7f);
	if (n > 0x7f) {
		l[0] |= 0x80;
		l[k++] = (uint8_t)(n >> 7 & 0x7f);
		if (n > 0x3fff) {
			l[1] |= 0x80;
			l[k++] = (uint8_t)(n >> 14);
		}
	}
	return eb_bytes(b, l, k);
}

/*
 * The filtered data: as it is when short (RFB: under 12 bytes), else
 * compressed, ending in a sync flush: by a fresh zlib stream (stream 0,
 * whose reset bit the control byte sets), or by the viewer's own stream
 * `own` (1-3, never reset).
 */
static int
tight_data(struct client *c, struct buf *b, const uint8_t *data, size_t n,
    int level, int own)
{
	struct encscratch *e = &c->srv->enc;
	z_stream *z;

	if (n < TIGHT_MIN_ZLIB)
		return eb_bytes(b, data, n);
	e->zbuf.len = 0;
	if ((z = own ? own_stream(c, own, level, &e->zbuf) :
	    zstream(e, 0, level)) == NULL ||
	    deflate_into(z, &e->zbuf, data, n, Z_SYNC_FLUSH) < 0 ||
	    e->zbuf.len > TIGHT_LEN_MAX)
		return -1;
	return eb_compact(b, e->zbuf.len) < 0 ? -1 :
	    eb_bytes(b, e->zbuf.data, e->zbuf.len);
}

/* The rectangle's source pixels, row by row. */
#define SRC_ROW(fr, rc, j) ((fr)->pixels + (size_t)((rc)->y + (j)) * \
	(fr)->stride + (rc)->x)

/* Palette indexes: one byte each, or with two colours rows of bits. */
static size_t
tight_indexes(struct encscratch *e, const struct fb_frame *f,
    const struct sub *sb, uint8_t *out)
{
	const struct rect *r = &sb->r;
	uint32_t last = sb->pal[0], one = sb->pal[1];
	uint8_t *p = out;
	unsigned idx = 0;
	int i, x, y;

	if (sb->ncol == 2) {
		for (y = 0; y < r->h; y++) {
			const uint32_t *row = SRC_ROW(f, r, y);
			unsigned acc = 0, nbits = 0;

			for (x = 0; x < r->w; x++) {
				acc = acc << 1 | ((row[x] & 0xffffff) == one);
				if (++nbits == 8) {
					*p++ = (uint8_t)acc;
					acc = nbits = 0;
				}
			}
			if (nbits > 0)	/* rows end on a byte boundary */
				*p++ = (uint8_t)(acc << (8 - nbits));
		}
		return (size_t)(p - out);
	}
	pal_reset(e);
	for (i = 0; i < sb->ncol; i++)
		pal_add(e, sb->pal[i], PAL_MAX);
	for (y = 0; y < r->h; y++) {
		const uint32_t *row = SRC_ROW(f, r, y);

		for (x = 0; x < r->w; x++) {
			uint32_t v = row[x] & 0xffffff;

			if (v != last) {
				last = v;
				idx = pal_index(e, v);
			}
			*p++ = (uint8_t)idx;
		}
	}
	return (size_t)(p - out);
}

/*
 * The gradient filter: each channel minus its prediction from the left,
 * upper and upper-left neighbours (zero outside the rectangle), clamped
 * to the channel's range, modulo the range.  For 3-byte TPIXELs the
 * channels are bytes, else the client's channels packed back into its
 * pixels (what libvncclient's and gtk-vnc's filters undo).
 */
static size_t
tight_gradient(const struct client *c, struct encscratch *e,
    const struct fb_frame *f, const struct rect *r, uint8_t *out)
{
	const struct pixfmt *pf = &c->pf;
	int x, y, k;
	uint16_t *up = e->grad, *cur = e->grad + 3 * RECT_MAX_W, *t;
	uint8_t *p = out;

	memset(up, 0, 3 * sizeof *up * (size_t)r->w);
	if (tpixel_bytes(pf) == 3) {
		/* the channels are the source's bytes: a loop of its own */
		for (y = 0; y < r->h; y++) {
			const uint32_t *row = SRC_ROW(f, r, y);
			int l[3] = { 0, 0, 0 }, ul[3] = { 0, 0, 0 };

			for (x = 0; x < r->w; x++, p += 3)
				for (k = 0; k < 3; k++) {
					int a = (int)(row[x] >> (16 - 8 * k) & 255);
					int u = up[3 * x + k], pr = l[k] + u - ul[k];

					pr = pr < 0 ? 0 : pr > 255 ? 255 : pr;
					p[k] = (uint8_t)(a - pr);
					cur[3 * x + k] = (uint16_t)a;
					l[k] = a;
					ul[k] = u;
				}
			t = up;
			up = cur;
			cur = t;
		}
		return (size_t)(p - out);
	}
	for (y = 0; y < r->h; y++) {
		px_values(c, e->px, SRC_ROW(f, r, y), r->w);
		for (x = 0; x < r->w; x++) {
			uint32_t res = 0;

			for (k = 0; k < 3; k++) {
				int max = pf->max[k];
				int a = (int)(e->px[x] >> pf->shift[k] & pf->max[k]);
				int left = x ? cur[3 * (x - 1) + k] : 0;
				int ul = x ? up[3 * (x - 1) + k] : 0;
				int pred = left + up[3 * x + k] - ul;

				pred = pred < 0 ? 0 : pred > max ? max : pred;
				cur[3 * x + k] = (uint16_t)a;
				res |= (uint32_t)((a - pred) & max) << pf->shift[k];
			}
			p = put_values(c, p, &res, 1, c->bytes_pp, 0);
		}
		t = up;
		up = cur;
		cur = t;
	}
	return (size_t)(p - out);
}

static int jpeg_rect(struct encscratch *, const struct fb_frame *,
    const struct rect *, int, struct buf *);
static void sub_smooth(const struct fb_frame *, struct sub *);

/* One sub as Tight; the kind it became goes to en->kind. */
static int
enc_tight(struct client *c, struct sub *sb,
    const struct variant *v, struct buf *b, struct encoded *en)
{
	struct server *s = c->srv;
	struct encscratch *e = &s->enc;
	const struct fb_frame *f = &s->frame;
	const struct rect *r = &sb->r;
	uint8_t ctl[2], *data;
	size_t n = (size_t)r->w * r->h, len;
	int y, stream;

	if (eb_rect_header(b, r, ENC_TIGHT) < 0)
		return -1;
	if (v->mode == M_JPEG) {
		en->kind = K_JPEG;
		e->jbuf.len = 0;
		if (jpeg_rect(e, f, r, v->quality, &e->jbuf) < 0 ||
		    e->jbuf.len > TIGHT_LEN_MAX)
			return -1;
		ctl[0] = TIGHT_JPEG;
		return eb_bytes(b, ctl, 1) < 0 || eb_compact(b, e->jbuf.len) < 0 ?
		    -1 : eb_bytes(b, e->jbuf.data, e->jbuf.len);
	}
	if (sb->cls == C_SOLID) {
		uint8_t px[4];

		en->kind = K_FILL;
		ctl[0] = TIGHT_FILL;
		len = (size_t)(put_tpixels(c, px, &sb->colour, 1) - px);
		return eb_bytes(b, ctl, 1) < 0 ? -1 : eb_bytes(b, px, len);
	}
	if ((data = eb_room(&e->tdata, n * 4)) == NULL)
		return -1;
	if (sb->cls == C_MONO || (sb->cls == C_INDEXED && c->bytes_pp > 1)) {
		/* a palette: 1-bit rows for two colours, else a byte each
		 * (at 8 bpp a byte is what the pixel is anyway) */
		uint8_t pal[4 * PAL_MAX];

		en->kind = sb->ncol == 2 ? K_MONO : K_INDEXED;
		stream = !v->own ? TS_SHARED : sb->ncol == 2 ? TS_MONO :
		    TS_INDEXED;
		ctl[0] = (uint8_t)((v->own ? 0 : 1) | stream << 4 |
		    TIGHT_EXPLICIT);
		ctl[1] = TF_PALETTE;
		len = tight_indexes(e, f, sb, data);
		y = sb->ncol - 1;
		if (eb_bytes(b, ctl, 2) < 0 || eb_bytes(b, &(uint8_t){ (uint8_t)y },
		    1) < 0 || eb_bytes(b, pal, (size_t)(put_tpixels(c, pal,
		    sb->pal, sb->ncol) - pal)) < 0)
			return -1;
		return tight_data(c, b, data, len, v->level, v->own ? stream : 0);
	}
	sub_smooth(f, sb);
	stream = v->own ? TS_FULL : TS_SHARED;
	if (sb->smooth == 1 && v->level > 0 && !v->nograd) {
		en->kind = K_GRADIENT;
		ctl[0] = (uint8_t)((v->own ? 0 : 1) | stream << 4 |
		    TIGHT_EXPLICIT);
		ctl[1] = TF_GRADIENT;
		len = tight_gradient(c, e, f, r, data);
		return eb_bytes(b, ctl, 2) < 0 ? -1 :
		    tight_data(c, b, data, len, v->level, v->own ? stream : 0);
	}
	en->kind = K_FULL;
	ctl[0] = (uint8_t)((v->own ? 0 : 1) | stream << 4);
	for (y = 0, len = 0; y < r->h; y++)
		len = (size_t)(put_tpixels(c, data + len, SRC_ROW(f, r, y), r->w) -
		    data);
	/* many colours and not smooth: at the speed levels deflate gains
	 * little for much (as ZRLE's photo tiles), so stored blocks */
	return eb_bytes(b, ctl, 1) < 0 ? -1 :
	    tight_data(c, b, data, len, v->store ? 0 : v->level,
	    v->own ? stream : 0);
}

/* -- JPEG (libjpeg, for Tight): into a struct buf, errors by longjmp -- */

static void
jpeg_fail(j_common_ptr ci)
{
	longjmp(((struct jpeg_err *)(void *)ci->err)->jb, 1);
}

static void
jpeg_quiet(j_common_ptr ci)
{
	(void)ci;
}

/* The free room of the buffer is the library's output space. */
static void
jdst_room(j_compress_ptr ci, size_t more)
{
	struct jpeg_dst *d = (struct jpeg_dst *)(void *)ci->dest;

	if (eb_room(d->b, more) == NULL)
		jpeg_fail((j_common_ptr)ci);
	d->pub.next_output_byte = d->b->data + d->b->len;
	d->pub.free_in_buffer = d->b->cap - d->b->len;
}

static void
jdst_init(j_compress_ptr ci)
{
	jdst_room(ci, ZOUT_CHUNK);
}

static boolean
jdst_empty(j_compress_ptr ci)
{
	struct jpeg_dst *d = (struct jpeg_dst *)(void *)ci->dest;

	d->b->len = d->b->cap;		/* all of it was written */
	jdst_room(ci, d->b->cap);
	return TRUE;
}

static void
jdst_term(j_compress_ptr ci)
{
	struct jpeg_dst *d = (struct jpeg_dst *)(void *)ci->dest;

	d->b->len = d->b->cap - d->pub.free_in_buffer;
}

/*
 * Quality levels 0-9 (RFB pseudo-encodings -32..-23) as libjpeg quality
 * and chroma subsampling: 4:2:0 up to 5, 4:2:2 for 6 and 7, 4:4:4 above.
 */
static const uint8_t jpeg_quality[10] = {
	15, 25, 35, 45, 55, 65, 75, 82, 90, 95,
};

/* The compressor, made on first use; -1 if it cannot be. */
static int
jpeg_make(struct encscratch *e)
{
	if ((e->jpeg = calloc(1, sizeof *e->jpeg)) == NULL ||
	    (e->jerr = calloc(1, sizeof *e->jerr)) == NULL) {
		free(e->jpeg);
		e->jpeg = NULL;
		return -1;
	}
	e->jpeg->err = jpeg_std_error(&e->jerr->pub);
	e->jerr->pub.error_exit = jpeg_fail;
	e->jerr->pub.output_message = jpeg_quiet;
	if (setjmp(e->jerr->jb)) {
		free(e->jpeg);
		free(e->jerr);
		e->jpeg = NULL;
		e->jerr = NULL;
		return -1;
	}
	jpeg_create_compress(e->jpeg);
	return 0;
}

static void
jpeg_run(struct encscratch *e, const struct fb_frame *f,
    const struct rect *r, int quality, struct buf *out)
{
	struct jpeg_compress_struct *ci = e->jpeg;
	struct jpeg_dst *dst = &e->jdst;
	JSAMPROW rows[16];
	int y, k, sub;

	memset(dst, 0, sizeof *dst);
	dst->pub.init_destination = jdst_init;
	dst->pub.empty_output_buffer = jdst_empty;
	dst->pub.term_destination = jdst_term;
	dst->b = out;
	ci->dest = &dst->pub;
	ci->image_width = (JDIMENSION)r->w;
	ci->image_height = (JDIMENSION)r->h;
#ifdef JCS_EXTENSIONS
	/* libjpeg-turbo reads the source's XRGB words as they are */
	ci->input_components = 4;
	ci->in_color_space = host_little_endian() ? JCS_EXT_BGRX : JCS_EXT_XRGB;
#else
	ci->input_components = 3;
	ci->in_color_space = JCS_RGB;
#endif
	jpeg_set_defaults(ci);
	jpeg_set_quality(ci, jpeg_quality[quality], TRUE);
	sub = quality <= 5 ? 2 : quality <= 7 ? 1 : 0;
	ci->comp_info[0].h_samp_factor = sub ? 2 : 1;
	ci->comp_info[0].v_samp_factor = sub == 2 ? 2 : 1;
	ci->dct_method = JDCT_ISLOW;
	jpeg_start_compress(ci, TRUE);
	for (y = 0; y < r->h; y += k) {
		for (k = 0; k < (int)nitems(rows) && y + k < r->h; k++) {
#ifdef JCS_EXTENSIONS
			rows[k] = (JSAMPROW)(uintptr_t)SRC_ROW(f, r, y + k);
#else
			const uint32_t *src = SRC_ROW(f, r, y + k);
			uint8_t *d = e->jrows + (size_t)k * 3 * RECT_MAX_W;
			int x;

			for (x = 0; x < r->w; x++) {
				d[3 * x] = (uint8_t)(src[x] >> 16);
				d[3 * x + 1] = (uint8_t)(src[x] >> 8);
				d[3 * x + 2] = (uint8_t)src[x];
			}
			rows[k] = d;
#endif
		}
		jpeg_write_scanlines(ci, rows, (JDIMENSION)k);
	}
	jpeg_finish_compress(ci);
	ci->dest = NULL;
}

/* r as a JPEG image appended to out; -1 if libjpeg failed. */
static int
jpeg_rect(struct encscratch *e, const struct fb_frame *f,
    const struct rect *r, int quality, struct buf *out)
{
	if (e->jpeg == NULL && jpeg_make(e) < 0)
		return -1;
	if (setjmp(e->jerr->jb)) {
		jpeg_abort_compress(e->jpeg);
		e->jpeg->dest = NULL;
		return -1;
	}
	jpeg_run(e, f, r, quality, out);
	return 0;
}

/* -- the plan of a rectangle: solid areas, then the rest by colours -- */

/*
 * What damage tile i (at tx, ty) is made of, unless known for its
 * content: colours up to BLOCK_FEW + 1 ("many": a photograph), the first
 * TILE_PAL kept.  Runs and a second colour alternating with the first
 * (text) take no palette lookup.
 */
static void
tile_analyse(struct server *s, size_t i, int tx, int ty)
{
	struct encscratch *e = &s->enc;
	const struct fb_frame *f = &s->frame;
	int x = tx * TILE, y = ty * TILE, j, k;
	int w = f->width - x < TILE ? f->width - x : TILE;
	int h = f->height - y < TILE ? f->height - y : TILE;
	const uint32_t *row = f->pixels + (size_t)y * f->stride + x;
	uint32_t last = row[0] & 0xffffff, other = last;

	if (e->tagen[i] == e->tgen[i] + 1)
		return;
	pal_reset(e);
	pal_add(e, last, BLOCK_FEW);
	for (j = 0; j < h && e->npal <= BLOCK_FEW; j++, row += f->stride)
		for (k = 0; k < w; k++) {
			uint32_t v = row[k] & 0xffffff;

			if (v == last)
				continue;
			if (v != other)
				pal_add(e, v, BLOCK_FEW);
			other = last;
			last = v;
		}
	e->tncol[i] = (uint8_t)e->npal;
	memcpy(e->tpal + i * TILE_PAL, e->pal, (size_t)(e->npal < TILE_PAL ?
	    e->npal : TILE_PAL) * sizeof *e->tpal);
	e->tagen[i] = e->tgen[i] + 1;
}

/*
 * Runs of cells with `bit` set in a gw x gh grid, merged down where a run
 * repeats in the next row: rectangles in grid units, at most one per
 * cell.  The bit is cleared in every cell taken.
 */
static int
grid_rects(uint8_t *grid, int gw, int gh, uint8_t bit, struct rect *out,
    int *open_a, int *open_b)
{
	int n = 0, gx, gy, *prev = open_a, *cur = open_b, *t;

	for (gx = 0; gx < gw; gx++)
		prev[gx] = -1;
	for (gy = 0; gy < gh; gy++) {
		uint8_t *row = grid + (size_t)gy * gw;

		for (gx = 0; gx < gw; gx++)
			cur[gx] = -1;
		for (gx = 0; gx < gw;) {
			int x0 = gx, k;

			if (!(row[gx] & bit)) {
				gx++;
				continue;
			}
			while (gx < gw && (row[gx] & bit))
				row[gx++] &= (uint8_t)~bit;
			k = prev[x0];
			if (k >= 0 && out[k].w == gx - x0) {
				out[k].h++;
			} else {
				k = n++;
				out[k].x = x0;
				out[k].y = gy;
				out[k].w = gx - x0;
				out[k].h = 1;
			}
			cur[x0] = k;
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	return n;
}

/*
 * A sub of few-coloured tiles: its colours (up to PAL_MAX, then "more"),
 * from the tiles' kept palettes, or where a tile has more than those,
 * from its pixels; its class follows.  -1: no memory for the palette.
 */
static int
sub_palette(struct server *s, struct sub *sb)
{
	struct encscratch *e = &s->enc;
	const struct fb_frame *f = &s->frame;
	const struct rect *r = &sb->r;
	int tx, ty, j, x, y;

	pal_reset(e);
	for (ty = r->y / TILE; ty <= (r->y + r->h - 1) / TILE; ty++)
		for (tx = r->x / TILE; tx <= (r->x + r->w - 1) / TILE; tx++) {
			size_t i = (size_t)ty * s->tw + tx;

			if (e->tncol[i] <= TILE_PAL) {
				for (j = 0; j < e->tncol[i]; j++)
					pal_add(e, e->tpal[i * TILE_PAL + j],
					    PAL_MAX);
				continue;
			}
			for (y = ty * TILE; y < (ty + 1) * TILE &&
			    y < r->y + r->h; y++)
				for (x = tx * TILE; x < (tx + 1) * TILE &&
				    x < r->x + r->w; x++)
					pal_add(e, f->pixels[(size_t)y *
					    f->stride + x] & 0xffffff, PAL_MAX);
		}
	sb->ncol = (uint16_t)e->npal;
	sb->cls = e->npal == 1 ? C_SOLID : e->npal == 2 ? C_MONO :
	    e->npal <= PAL_MAX ? C_INDEXED : C_FULL;
	sb->colour = e->pal[0];
	sb->smooth = sb->cls == C_FULL ? 2 : 0;
	if (sb->cls != C_MONO && sb->cls != C_INDEXED)
		return 0;
	if ((sb->pal = malloc(sb->ncol * sizeof *sb->pal)) == NULL)
		return -1;
	memcpy(sb->pal, e->pal, sb->ncol * sizeof *sb->pal);
	return 0;
}

/*
 * Whether the gradient filter predicts a full-colour sub well, worked
 * out when first asked (a viewer with one way to send everything never
 * asks): sampled rows, a mean error per channel under SMOOTH_ERR.
 */
static void
sub_smooth(const struct fb_frame *f, struct sub *sb)
{
	const struct rect *r = &sb->r;
	unsigned long err = 0, samples = 0;
	int x, y, k;

	if (sb->cls != C_FULL || sb->smooth != 2)
		return;
	for (y = 1; y < r->h; y += SMOOTH_STEP) {
		const uint32_t *row = SRC_ROW(f, r, y), *up = row - f->stride;

		for (x = 1; x < r->w; x++, samples += 3)
			for (k = 0; k < 24; k += 8) {
				int a = row[x] >> k & 255, l = row[x - 1] >> k & 255;
				int u = up[x] >> k & 255, ul = up[x - 1] >> k & 255;
				int pred = l + u - ul;

				pred = pred < 0 ? 0 : pred > 255 ? 255 : pred;
				err += (unsigned long)abs(a - pred);
			}
	}
	sb->smooth = samples > 0 && err < SMOOTH_ERR * samples;
}

/* The newest damage stamp of the tiles under r. */
static unsigned long
rect_gen(const struct server *s, const struct rect *r)
{
	unsigned long g = 0;
	int tx, ty;

	for (ty = r->y / TILE; ty <= (r->y + r->h - 1) / TILE; ty++)
		for (tx = r->x / TILE; tx <= (r->x + r->w - 1) / TILE; tx++)
			if (s->enc.tgen[(size_t)ty * s->tw + tx] > g)
				g = s->enc.tgen[(size_t)ty * s->tw + tx];
	return g;
}

static void
plan_free(struct encscratch *e, struct plan *p)
{
	int i;

	for (i = 0; i < p->nsub; i++) {
		struct encoded *en, *next;

		for (en = p->sub[i].enc; en != NULL; en = next) {
			next = en->next;
			if (e->spare_bytes + en->b.cap > SPARE_MAX) {
				buf_free(&en->b);
				free(en);
				continue;
			}
			en->next = e->spare;
			e->spare = en;
			e->spare_bytes += en->b.cap;
		}
		free(p->sub[i].pal);
	}
	e->cache_bytes -= p->bytes;
	e->nplans--;
	free(p);
}

static unsigned
plan_hash(const struct rect *r)
{
	uint32_t h = (uint32_t)r->x * 2654435761u ^ (uint32_t)r->y * 40503u ^
	    (uint32_t)r->w * 2246822519u ^ (uint32_t)r->h * 3266489917u;

	return (h ^ h >> 15) & (PLAN_HASH - 1);
}

/*
 * A rectangle's plan, from what collect_rects() made it of (kind): one
 * colour, few (its palette), many (full colour), or not analysed.
 */
static struct plan *
plan_make(struct server *s, const struct rect *r, int kind,
    unsigned long gen)
{
	struct encscratch *e = &s->enc;
	struct plan *p;
	struct sub *sb;

	if ((p = malloc(sizeof *p + sizeof p->sub[0])) == NULL)
		return NULL;
	sb = &p->sub[0];
	memset(sb, 0, sizeof *sb);
	sb->r = *r;
	sb->smooth = 2;
	switch (kind) {
	case R_SOLID:
		sb->cls = C_SOLID;
		sb->ncol = 1;
		sb->colour = e->tpal[((size_t)(r->y / TILE) * s->tw + r->x /
		    TILE) * TILE_PAL];
		break;
	case R_FEW:
		if (sub_palette(s, sb) < 0) {
			free(p);
			return NULL;
		}
		break;
	case R_MANY:
		sb->cls = C_FULL;
		sb->ncol = PAL_MAX + 1;
		break;
	default:
		sb->cls = C_UNKNOWN;
	}
	p->r = *r;
	p->gen = gen;
	p->deep = kind != R_ANY;
	p->nsub = 1;
	p->bytes = sizeof *p + sizeof p->sub[0] +
	    (sb->pal != NULL ? sb->ncol * sizeof *sb->pal : 0);
	e->cache_bytes += p->bytes;
	e->nplans++;
	return p;
}

/* The plan for r as the screen is now: kept, or made (NULL: no memory).
 * One analysed serves a viewer that needs none, not the other way. */
static struct plan *
plan_get(struct server *s, const struct rect *r, int kind)
{
	struct encscratch *e = &s->enc;
	struct plan **pp = &e->plans[plan_hash(r)], *p;
	unsigned long gen = rect_gen(s, r);

	for (; (p = *pp) != NULL; pp = &p->next)
		if (p->r.x == r->x && p->r.y == r->y && p->r.w == r->w &&
		    p->r.h == r->h)
			break;
	if (p != NULL && p->gen == gen && (p->deep || kind == R_ANY)) {
		p->used = e->epoch;
		return p;
	}
	if (p != NULL) {	/* the content changed, or analysis is wanted */
		*pp = p->next;
		plan_free(e, p);
	}
	if ((p = plan_make(s, r, kind, gen)) == NULL)
		return NULL;
	p->used = e->epoch;
	p->next = e->plans[plan_hash(r)];
	e->plans[plan_hash(r)] = p;
	return p;
}

/* Every plan, or those whose content changed since, or unused ones while
 * the cache is over its bound. */
static void
plans_trim(struct server *s, int all)
{
	struct encscratch *e = &s->enc;
	size_t max = (size_t)s->frame.width * s->frame.height * 8;
	int i, pass;

	if (max < CACHE_MIN)
		max = CACHE_MIN;
	for (pass = 0; pass < 2 && (all || e->cache_bytes > max); pass++)
		for (i = 0; i < PLAN_HASH; i++) {
			struct plan **pp = &e->plans[i], *p;

			while ((p = *pp) != NULL)
				if (all || (pass == 0 ? p->gen != rect_gen(s,
				    &p->r) : p->used != e->epoch)) {
					*pp = p->next;
					plan_free(e, p);
				} else {
					pp = &p->next;
				}
		}
}

/* -- choosing: estimated seconds of CPU plus seconds on the link -- */

/*
 * What a byte and a pixel cost before anything was measured.  Bytes: per
 * pixel, by mode and class (the last: a sub not analysed), with
 * many-coloured data stored or deflated (the index: what makes the
 * levels differ most), relative to what the format makes raw (bytes_pp;
 * for JPEG 1, times jpeg_size).  Time: ns of CPU per pixel, as measured
 * on a 2020 x86 core.  What the encoders do is learnt as ratios to these
 * (learn()), and choose() tries the runner-up now and then, so one bad
 * measurement does not stay.
 */
static const float prior_bytes[NMODES][2][NCLASSES + 1] = {
	/* solid, mono, indexed, full, not analysed */
	[M_RAW] = { { 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1 } },
	[M_HEXTILE] = { { .02f, .15f, .6f, 1.01f, .6f },
	    { .02f, .15f, .6f, 1.01f, .6f } },
	[M_ZRLE] = { { .001f, .03f, .15f, .76f, .3f },
	    { .001f, .02f, .1f, .5f, .15f } },
	[M_TIGHT] = { { .001f, .03f, .1f, .76f, .3f },
	    { .001f, .02f, .08f, .5f, .15f } },
	[M_JPEG] = { { .1f, .1f, .12f, .15f, .15f },
	    { .1f, .1f, .12f, .15f, .15f } },
};
static const float prior_ns[NMODES][2][NCLASSES + 1] = {
	[M_RAW] = { { 1, 1, 1, 1, 1 }, { 1, 1, 1, 1, 1 } },
	[M_HEXTILE] = { { 4, 8, 15, 10, 10 }, { 4, 8, 15, 10, 10 } },
	[M_ZRLE] = { { 2, 4, 6, 4, 5 }, { 2, 6, 12, 40, 25 } },
	[M_TIGHT] = { { .5f, 2, 4, 4, 4 }, { .5f, 3, 8, 40, 25 } },
	[M_JPEG] = { { 12, 12, 12, 12, 12 }, { 12, 12, 12, 12, 12 } },
};
/* JPEG's bytes per pixel by quality level, times prior_bytes' 1 */
static const float jpeg_size[10] = {
	.35f, .45f, .55f, .65f, .75f, .85f, 1.1f, 1.4f, 2.0f, 3.0f,
};

/* Bytes a sub would take in mode m at level hi (before measuring). */
static double
guess_bytes(const struct client *c, const struct sub *sb, int m, int hi)
{
	double n = (double)sb->r.w * sb->r.h, per;
	int tp = tpixel_bytes(&c->pf);

	switch (m) {
	case M_RAW:
		return 12 + n * c->bytes_pp;
	case M_JPEG:
		return 16 + n * prior_bytes[m][hi][sb->cls] *
		    jpeg_size[c->quality];
	case M_TIGHT:
		if (sb->cls == C_SOLID)
			return 13 + tp;
		if (sb->cls == C_UNKNOWN)
			break;
		per = sb->cls == C_FULL ? tp : 1;
		if (sb->cls == C_FULL && sb->smooth == 1 && !c->tight_nograd)
			per *= .1;
		return 20 + sb->ncol * (sb->cls == C_FULL ? 0 : tp) +
		    n * per * prior_bytes[m][hi][sb->cls];
	}
	return 16 + n * c->bytes_pp * prior_bytes[m][hi][sb->cls];
}

/* Learnt as moving averages: bytes made over bytes guessed, and ns over
 * prior_ns, by mode, level and class. */
static void
learn(struct encscratch *e, const struct client *c, const struct sub *sb,
    const struct variant *v, size_t bytes, long long ns)
{
	double n = (double)sb->r.w * sb->r.h, xb, xn;
	int m = v->mode, hi = !v->store, k = sb->cls;
	float *fb, *fn;

	if (n < 1024)		/* too small to tell: headers, clock grain */
		return;
	xb = bytes / guess_bytes(c, sb, m, hi);
	xn = ns / n / prior_ns[m][hi][k];
	fb = &e->fbytes[m][hi][k];
	fn = &e->fns[m][hi][k];
	*fb = (float)(*fb == 0 ? xb : *fb * .8 + xb * .2);
	*fn = (float)(*fn == 0 ? xn : *fn * .8 + xn * .2);
}

/* Bytes/s: measured, else a guess; never above what -o link-kbit says. */
static double
link_rate(const struct client *c)
{
	double r = c->rate > 0 ? c->rate : LINK_GUESS;
	int k = c->srv->link_kbit;

	return k > 0 && r > k * 125.0 ? k * 125.0 : r;
}

/* Seconds: the longer of making it (nothing if made) and sending it. */
static double
cost(const struct client *c, const struct sub *sb, const struct variant *v,
    const struct encoded *made)
{
	const struct encscratch *e = &c->srv->enc;
	double n = (double)sb->r.w * sb->r.h, bytes, ns;
	int m = v->mode, hi = !v->store, k = sb->cls;

	if (made != NULL)
		return made->b.len / link_rate(c);
	bytes = guess_bytes(c, sb, m, hi);
	if (e->fbytes[m][hi][k] > 0)
		bytes *= e->fbytes[m][hi][k];
	ns = prior_ns[m][hi][k];
	if (e->fns[m][hi][k] > 0)
		ns *= e->fns[m][hi][k];
	if (m == M_RAW && c->native)
		ns /= 4;	/* a copy, not a translation */
	/* the encoder's next rectangle and the link's last one overlap:
	 * the slower of the two is what it costs */
	ns *= n * 1e-9;
	bytes /= link_rate(c);
	return ns > bytes ? ns : bytes;
}

static int
variant_same(const struct variant *a, const struct variant *b)
{
	return a->mode == b->mode && a->level == b->level &&
	    a->store == b->store && a->quality == b->quality &&
	    a->nograd == b->nograd &&
	    (a->mode == M_JPEG || pixfmt_same(&a->pf, &b->pf));
}

static struct encoded *
made_as(const struct sub *sb, const struct variant *v)
{
	struct encoded *en;

	for (en = sb->enc; en != NULL; en = en->next)
		if (variant_same(&en->v, v))
			return en;
	return NULL;
}

/* The variant of mode m at level hi for this client. */
static void
variant_of(const struct client *c, int m, int hi, struct variant *v)
{
	int base = c->zasked > 0 ? c->zasked - 1 : c->srv->zlevel;

	memset(v, 0, sizeof *v);
	v->mode = (uint8_t)m;
	v->hi = (uint8_t)(m == M_ZRLE || m == M_TIGHT ? hi : 0);
	if (m == M_JPEG)
		v->quality = (uint8_t)c->quality;
	else
		v->pf = c->pf;
	if (m == M_TIGHT)
		v->nograd = c->tight_nograd;
	if (m == M_ZRLE || m == M_TIGHT) {
		/* fast: the base level (the viewer's, else -Z), many-
		 * coloured data stored at the speed levels; small: deflate
		 * all of it, at ZLEVEL_SMALL or the base level if higher
		 * (a CompressLevel of 3 still lets a slow link have 6: the
		 * choice weighs the CPU it costs) */
		v->level = (uint8_t)(hi && base < ZLEVEL_SMALL ?
		    ZLEVEL_SMALL : base);
		v->store = !hi && base <= ZLEVEL_STORE_MAX;
	}
}

/* Can mode m carry this sub to this client (lossy: JPEG is allowed)? */
static int
mode_fits(const struct client *c, struct sub *sb, int m, int lossy)
{
	if (c->rank[m] < 0)
		return 0;
	switch (m) {
	case M_TIGHT:
		return tight_usable(&c->pf);
	case M_JPEG:
		/* libvncclient has no JPEG at 8 bpp; few colours are text
		 * or drawings, which JPEG blurs */
		if (!lossy || c->quality < 0 || c->bytes_pp == 1 ||
		    !tight_usable(&c->pf))
			return 0;
		sub_smooth(&c->srv->frame, sb);
		return sb->cls == C_FULL ||
		    (sb->cls == C_INDEXED && sb->ncol > JPEG_MIN_COLOURS);
	default:
		return 1;
	}
}

/*
 * What a viewer's choice depends on besides the sub: its encodings and
 * their order, levels, quality, pixel format, the link's rate (within a
 * factor of 2) and whether lossy is allowed.  Viewers with the same key
 * get the same choice, so viewers in step get the same bytes (and the
 * estimates learnt in between change nothing for them).
 */
static uint32_t
choice_key(const struct client *c, int lossy)
{
	uint32_t h = 2166136261u;
	double r = link_rate(c);
	int i, b = 0;

#define MIX(x) (h = (h ^ (uint32_t)(x)) * 16777619u)
	for (i = 0; i < NMODES; i++)
		MIX(c->rank[i]);
	MIX(c->quality);
	MIX(c->zasked);
	MIX(c->tight_nograd);
	MIX(lossy);
	MIX(c->pf.bpp << 24 | c->pf.depth << 16 | c->pf.bigendian << 8);
	MIX((uint32_t)c->pf.max[0] << 16 | c->pf.max[1]);
	MIX((uint32_t)c->pf.max[2] << 16 | c->pf.shift[0] << 8 |
	    c->pf.shift[1]);
	MIX(c->pf.shift[2]);
	for (; r > 1 && b < 64; b++)
		r /= 2;
	MIX(b);
#undef MIX
	return h ? h : 1;
}

/*
 * The cheapest way for this client; among those within CHOICE_SLACK of
 * it, the one the viewer listed first.  Raw when nothing else fits: RFB
 * makes every viewer take it.
 */
static void
choose(const struct client *c, struct sub *sb, int lossy,
    struct variant *best)
{
	struct variant v[2 * NMODES];
	double cs[2 * NMODES], min = -1;
	int m, hi, n = 0, i, pick = -1;
	uint32_t key = choice_key(c, lossy);

	if (sb->pick_key == key) {
		*best = sb->pick;
		return;
	}

	for (m = 0; m < NMODES; m++)
		for (hi = 0; hi < 2; hi++) {
			if (!mode_fits(c, sb, m, lossy))
				continue;
			variant_of(c, m, hi, &v[n]);
			if (n == 0 || !variant_same(&v[n], &v[n - 1]))
				n++;	/* else: no second level */
		}
	if (n <= 1) {		/* one way: nothing to weigh */
		if (n == 0)	/* e.g. only Tight, in a format it cannot */
			variant_of(c, M_RAW, 0, &v[0]);
		*best = v[0];
		return;
	}
	/* Tight's guess needs to know whether the gradient filter pays */
	for (i = 0; i < n && v[i].mode != M_TIGHT; i++)
		;
	if (i < n)
		sub_smooth(&c->srv->frame, sb);
	for (i = 0; i < n; i++) {
		cs[i] = cost(c, sb, &v[i], made_as(sb, &v[i]));
		if (min < 0 || cs[i] < min)
			min = cs[i];
	}
	for (i = 0; i < n; i++)
		if (cs[i] <= min * CHOICE_SLACK && (pick < 0 ||
		    c->rank[v[i].mode] < c->rank[v[pick].mode] ||
		    (c->rank[v[i].mode] == c->rank[v[pick].mode] &&
		    cs[i] < cs[pick])))
			pick = i;
	/* now and then the runner-up, if not far behind, to measure it
	 * again: what the estimates say of a way not taken for a while
	 * may be wrong for what the screen shows now */
	if (made_as(sb, &v[pick]) == NULL && sb->r.w * sb->r.h >= 1024 &&
	    ++c->srv->enc.nchoices % EXPLORE_EVERY == 0) {
		int ru = -1;

		for (i = 0; i < n; i++)
			if (i != pick && v[i].mode != M_RAW &&
			    cs[i] < cs[pick] * EXPLORE_MAX &&
			    (ru < 0 || cs[i] < cs[ru]))
				ru = i;
		if (ru >= 0)
			pick = ru;
	}
	*best = v[pick];
	sb->pick = v[pick];
	sb->pick_key = key;
}

/* -- the link: bytes the viewer took off its queues per second -- */

static int sock_queued(const struct client *);	/* Pacing */

/*
 * A window opens when bytes go to an idle link (link_sent()) and is
 * sampled before more are written (every flush, also in the middle of an
 * update, so a first frame adapts to a slow link half-way): if bytes
 * still wait in the kernel, or were left in our queue by the last write,
 * the link was busy all along and what it delivered over the window
 * (LINK_WINDOW_MS at least: acknowledgements come in bursts) is its rate,
 * averaged with the ones before; if all went, a lower bound, which may
 * only raise the estimate, and sets none below LINK_GUESS: a small update
 * on a fast link says nothing of its speed.  The kernel's count
 * (sock_queued(): SIOCOUTQ, FIONWRITE) shows the backlog a socket buffer
 * hides; without it our own queue does, once frames outgrow that buffer.
 */
static void
link_sample(struct client *c, long long now)
{
	int sq = sock_queued(c);
	size_t q = sq > 0 ? (size_t)sq : 0;
	uint64_t done = c->wrote > q ? c->wrote - q : 0;
	int busy = q > 0 || c->lk_left > 0;
	double rate;

	if (c->lk_t0 == 0 || done < c->lk_done)
		return;
	/* a first estimate comes sooner when much is held back: a first
	 * frame must not go raw all the way over a slow link */
	if (now - c->lk_t0 < (c->rate == 0 && q + c->lk_left > OUT_LOW ?
	    1 : LINK_WINDOW_MS)) {
		if (!busy)
			c->lk_t0 = 0;
		return;
	}
	rate = (double)(done - c->lk_done) * 1000 / (double)(now - c->lk_t0);
	if (busy)
		c->rate = c->rate > 0 ? (c->rate + rate) / 2 : rate;
	else if (rate > link_rate(c))
		c->rate = rate;
	c->lk_t0 = busy ? now : 0;
	c->lk_done = done;
}

/* Bytes went to the socket: an idle link starts a window. */
static void
link_sent(struct client *c, long long now)
{
	int sq;

	if (c->lk_t0 != 0)
		return;
	sq = sock_queued(c);
	c->lk_t0 = now;
	c->lk_done = sq > 0 ? (c->wrote > (uint64_t)sq ? c->wrote -
	    (uint64_t)sq : 0) : c->wrote;
}

/* -- sending a sub -- */

/* Did most tiles under r change shortly before their last change? */
static int
rect_moving(const struct server *s, const struct rect *r)
{
	int tx, ty, n = 0, moving = 0;

	for (ty = r->y / TILE; ty <= (r->y + r->h - 1) / TILE; ty++)
		for (tx = r->x / TILE; tx <= (r->x + r->w - 1) / TILE; tx++) {
			n++;
			moving += s->enc.tmoving[(size_t)ty * s->tw + tx];
		}
	return 2 * moving > n;
}

/* Tiles under r: lossy now, or not. */
static void
tiles_lossy(struct client *c, const struct rect *r, int lossy, long long now)
{
	int tx, ty;

	for (ty = r->y / TILE; ty <= (r->y + r->h - 1) / TILE; ty++)
		for (tx = r->x / TILE; tx <= (r->x + r->w - 1) / TILE; tx++) {
			uint8_t *t = &c->dirty[(size_t)ty * c->dtw + tx];

			*t = (uint8_t)(lossy ? *t | T_LOSSY : *t & ~T_LOSSY);
		}
	if (lossy && c->refresh_due == 0)
		c->refresh_due = now + REFRESH_MS;
}

static const struct {
	const char *name;
	int32_t num;
	int (*fn)(struct client *, struct sub *, const struct variant *,
	    struct buf *, struct encoded *);
} modes[NMODES] = {
	[M_RAW] = { "raw", ENC_RAW, NULL },	/* straight to the queue */
	[M_HEXTILE] = { "hextile", ENC_HEXTILE, enc_hextile },
	[M_ZRLE] = { "zrle", ENC_ZRLE, enc_zrle },
	[M_TIGHT] = { "tight", ENC_TIGHT, enc_tight },
	[M_JPEG] = { "tight", ENC_TIGHT, enc_tight },
};

static const char *const kind_name[NKINDS] = {
	"raw", "hextile", "zrle", "fill", "mono", "indexed", "full",
	"gradient", "jpeg",
};

/* Make sb in variant v and keep it with the sub; NULL: failed. */
static struct encoded *
encode(struct client *c, struct plan *p, struct sub *sb,
    const struct variant *v)
{
	struct encscratch *e = &c->srv->enc;
	struct encoded *en = e->spare;
	struct timespec t0, t1;
	struct buf b;
	/* what making it costs is CPU time: waiting for the CPU is not */
#ifdef CLOCK_PROCESS_CPUTIME_ID
	const clockid_t clk = CLOCK_PROCESS_CPUTIME_ID;
#else
	const clockid_t clk = CLOCK_MONOTONIC;
#endif

	if (en != NULL) {
		e->spare = en->next;
		e->spare_bytes -= en->b.cap;
		b = en->b;
	} else if ((en = malloc(sizeof *en)) == NULL) {
		return NULL;
	} else {
		memset(&b, 0, sizeof b);
	}
	memset(en, 0, sizeof *en);
	en->v = *v;
	en->kind = (uint8_t)(v->mode == M_HEXTILE ? K_HEXTILE : K_ZRLE);
	b.off = b.len = 0;
	clock_gettime(clk, &t0);
	if (modes[v->mode].fn(c, sb, v, &b, en) < 0) {
		buf_free(&b);
		free(en);
		return NULL;
	}
	clock_gettime(clk, &t1);
	learn(e, c, sb, v, b.len, (t1.tv_sec - t0.tv_sec) * 1000000000LL +
	    (t1.tv_nsec - t0.tv_nsec));
	en->b = b;
	en->next = sb->enc;
	sb->enc = en;
	p->bytes += sizeof *en + b.cap;
	e->cache_bytes += sizeof *en + b.cap;
	return en;
}

/* Queue what was made, as this viewer's stream needs it. */
static void
wr_encoded(struct client *c, const struct encoded *en)
{
	uint32_t n;

	if (en->v.mode == M_ZRLE && !en->v.own)
		c->own_stale = 1;
	if (en->v.mode != M_ZRLE || c->zrle_started) {
		wr_bytes(c, en->b.data, en->b.len);
		return;
	}
	/* the viewer's ZRLE stream starts here: the zlib header, then raw
	 * deflate like every viewer's (no checksum is ever read: the
	 * stream never ends) */
	n = (uint32_t)en->b.data[12] << 24 | (uint32_t)en->b.data[13] << 16 |
	    (uint32_t)en->b.data[14] << 8 | en->b.data[15];
	wr_bytes(c, en->b.data, 12);
	wr_u32(c, n + 2);
	wr_bytes(c, "\x78\x01", 2);
	wr_bytes(c, en->b.data + 16, en->b.len - 16);
	c->zrle_started = 1;
}

/* One sub to one viewer: chosen, made or found, queued, accounted.  A
 * small one through a deflating encoding goes through the viewer's own
 * stream, made for it alone. */
static void
send_sub(struct client *c, struct plan *p, struct sub *sb, int lossy,
    long long now)
{
	struct encscratch *e = &c->srv->enc;
	struct variant v;
	struct encoded *en = NULL, own;
	size_t before = buf_used(&c->out);
	int kind, i;

	if (lossy && link_rate(c) >= STILL_LOSSY_KBIT * 125.0 &&
	    !rect_moving(c->srv, &sb->r))
		lossy = 0;
	choose(c, sb, lossy, &v);
	if ((v.mode == M_ZRLE || (v.mode == M_TIGHT && sb->cls != C_SOLID)) &&
	    sb->r.w * sb->r.h < OWN_PIXELS) {
		memset(&own, 0, sizeof own);
		v.own = 1;
		if (v.level > 0 && v.level < OWN_LEVEL)
			v.level = OWN_LEVEL;
		own.v = v;
		own.kind = (uint8_t)(v.mode == M_ZRLE ? K_ZRLE : K_FULL);
		e->obuf.len = 0;
		if (modes[v.mode].fn(c, sb, &v, &e->obuf, &own) == 0) {
			own.b = e->obuf;
			en = &own;
			wr_encoded(c, en);
			c->owned++;
		}
		kind = en != NULL ? en->kind : 0;
	} else if (v.mode == M_RAW) {
		enc_raw(c, &sb->r);
		kind = K_RAW;
	} else if ((en = made_as(sb, &v)) != NULL) {
		c->shared++;
		wr_encoded(c, en);
		kind = en->kind;
	} else if ((en = encode(c, p, sb, &v)) != NULL) {
		wr_encoded(c, en);
		kind = en->kind;
	}
	if (en == NULL && v.mode != M_RAW) {
		cl_fail(c, "out of memory or a compressor failed encoding "
		    "%s", modes[v.mode].name);
		return;
	}
	if (v.mode == M_ZRLE)
		for (i = 0; i < ZT_KINDS; i++)
			c->ztiles[i] += en->ztiles[i];
	c->kind_rects[kind]++;
	c->kind_bytes[kind] += buf_used(&c->out) - before;
	tiles_lossy(c, &sb->r, v.mode == M_JPEG, now);
}

/* Real encodings a viewer may list; pseudo-encodings are read apart. */
static const struct encoder {
	int32_t num;
	int mode;
} encoders[] = {
	{ ENC_RAW, M_RAW },
	{ ENC_HEXTILE, M_HEXTILE },
	{ ENC_ZRLE, M_ZRLE },
	{ ENC_TIGHT, M_TIGHT },
};

/* A viewer went away: its own streams, and what it was sent, for the
 * log. */
static void
enc_free(struct client *c)
{
	char line[400];
	size_t off = 0;
	int i;

	for (i = 0; i < (int)nitems(c->own); i++)
		if (c->own[i] != NULL) {
			deflateEnd(c->own[i]);
			free(c->own[i]);
			c->own[i] = NULL;
		}
	for (i = 0; i < NKINDS; i++)
		if (c->kind_rects[i] > 0)
			off += (size_t)snprintf(line + off, sizeof line - off,
			    " %s=%lu/%lluK", kind_name[i], c->kind_rects[i],
			    (unsigned long long)c->kind_bytes[i] / 1024);
	if (off == 0)
		return;
	logx(c->srv, LOG_DEBUG, "peer=%s rects:%s shared=%lu own=%lu "
	    "rate=%.0fk (kept: %d plans, %zuK)", c->peer, line, c->shared,
	    c->owned, c->rate / 1000, c->srv->enc.nplans,
	    c->srv->enc.cache_bytes / 1024);
	if (c->kind_rects[K_ZRLE] == 0)
		return;
	for (i = off = 0; i < ZT_KINDS; i++)
		off += (size_t)snprintf(line + off, sizeof line - off,
		    " %s=%lu", ztile_name[i], c->ztiles[i]);
	logx(c->srv, LOG_DEBUG, "peer=%s zrle tiles:%s", c->peer, line);
}

/* ---------------------------------------------------------------------
 * Damage and updates.
 * ------------------------------------------------------------------- */

static void
dirty_mark(struct client *c, int x, int y, int w, int h)
{
	int tx0, ty0, tx1, ty1, tx, ty;

	if (c->dirty == NULL || x < 0 || y < 0 || w <= 0 || h <= 0)
		return;
	tx0 = x / TILE;
	ty0 = y / TILE;
	tx1 = (x + w - 1) / TILE;
	ty1 = (y + h - 1) / TILE;
	/* the map's own size bounds every write, whatever the caller */
	if (tx1 >= c->dtw)
		tx1 = c->dtw - 1;
	if (ty1 >= c->dth)
		ty1 = c->dth - 1;
	for (ty = ty0; ty <= ty1; ty++)
		for (tx = tx0; tx <= tx1; tx++)
			c->dirty[(size_t)ty * c->dtw + tx] = (uint8_t)
			    ((c->dirty[(size_t)ty * c->dtw + tx] | T_CHANGED) &
			    ~T_REFRESH);
}

static void
srv_damage(void *p, int x, int y, int w, int h)
{
	struct server *s = p;
	struct client *c;
	long long now;
	int tx, ty;

	if (!rect_clip(&x, &y, &w, &h, s->frame.width, s->frame.height))
		return;
	for (c = s->clients; c != NULL; c = c->next)
		if (c->state == ST_NORMAL)
			dirty_mark(c, x, y, w, h);

	/* what the encoders kept for these tiles is stale now */
	if (w <= 0 || h <= 0 || s->enc.tgen == NULL)
		return;
	s->enc.gen++;
	now = mono_ms();
	for (ty = y / TILE; ty <= (y + h - 1) / TILE && ty < s->th; ty++)
		for (tx = x / TILE; tx <= (x + w - 1) / TILE && tx < s->tw;
		    tx++) {
			size_t i = (size_t)ty * s->tw + tx;
			long long dt = now - s->enc.tms[i];

			s->enc.tgen[i] = s->enc.gen;
			if (dt >= SAME_CHANGE_MS || s->enc.tms[i] == 0)
				s->enc.tmoving[i] = s->enc.tms[i] != 0 &&
				    dt < MOVING_MS;
			s->enc.tms[i] = now;
		}
}

/* The encoders' working memory for rectangles of the current screen. */
static void
enc_scratch_free(struct server *s)
{
	struct encscratch *e = &s->enc;

	plans_trim(s, 1);
	free(e->tgen);
	free(e->tms);
	free(e->tmoving);
	free(e->tagen);
	free(e->tncol);
	free(e->tpal);
	e->tagen = NULL;
	e->tncol = NULL;
	e->tpal = NULL;
	e->tgen = NULL;
	e->tms = NULL;
	e->tmoving = NULL;
}

/* The tile grid and its scratch, gone: tw = th = 0. */
static void
grid_free(struct server *s)
{
	enc_scratch_free(s);
	free(s->rects);
	free(s->rkind);
	free(s->plans);
	free(s->kgrid);
	free(s->open_a);
	free(s->open_b);
	s->rects = NULL;
	s->rkind = NULL;
	s->plans = NULL;
	s->kgrid = NULL;
	s->open_a = s->open_b = NULL;
	s->tw = s->th = 0;
}

/*
 * All the encoders hold, the tile grid's scratch included, freed (the
 * fuzzer's inputs free what they made); the next ClientInit makes the
 * grid again.
 */
static void
enc_teardown(struct server *s)
{
	struct encscratch *e = &s->enc;
	struct encoded *en;

	grid_free(s);
	while ((en = e->spare) != NULL) {
		e->spare = en->next;
		buf_free(&en->b);
		free(en);
	}
	if (e->zlib != NULL)
		deflateEnd(e->zlib);
	if (e->zraw != NULL)
		deflateEnd(e->zraw);
	free(e->zlib);
	free(e->zraw);
	if (e->jpeg != NULL)
		jpeg_destroy_compress(e->jpeg);
	free(e->jpeg);
	free(e->jerr);
	buf_free(&e->zbuf);
	buf_free(&e->jbuf);
	buf_free(&e->tdata);
	buf_free(&e->obuf);
	memset(e, 0, sizeof *e);
}

/*
 * (Re)build the tile grid for the source's current geometry.  All or
 * nothing: on failure the grid is empty (tw = th = 0, no scratch), which
 * every user of it handles, and the next ClientInit tries again.
 */
static int
grid_setup(struct server *s)
{
	struct encscratch *e = &s->enc;
	size_t n;

	fb_source.frame(s->fb, &s->frame);
	grid_free(s);		/* plans of the old screen go too */
	s->tw = (s->frame.width + TILE - 1) / TILE;
	s->th = (s->frame.height + TILE - 1) / TILE;
	n = (size_t)s->tw * s->th;
	s->rects = calloc(n, sizeof *s->rects);
	s->plans = calloc(n, sizeof *s->plans);
	s->open_a = calloc((size_t)s->tw, sizeof *s->open_a);
	s->open_b = calloc((size_t)s->tw, sizeof *s->open_b);
	e->tgen = calloc(n, sizeof *e->tgen);
	e->tms = calloc(n, sizeof *e->tms);
	e->tmoving = calloc(n, sizeof *e->tmoving);
	e->tagen = calloc(n, sizeof *e->tagen);
	e->tncol = calloc(n, sizeof *e->tncol);
	e->tpal = calloc(n * TILE_PAL, sizeof *e->tpal);
	s->rkind = calloc(n, sizeof *s->rkind);
	s->kgrid = calloc(n, sizeof *s->kgrid);
	if (s->rects && s->plans && s->open_a && s->open_b && e->tgen &&
	    e->tms && e->tmoving && e->tagen && e->tncol && e->tpal &&
	    s->rkind && s->kgrid)
		return 0;
	grid_free(s);
	logx(s, LOG_ERR, "out of memory for a %dx%d screen's tile grid",
	    s->frame.width, s->frame.height);
	return -1;
}

static void
cl_ungrid(struct client *c)
{
	free(c->dirty);
	c->dirty = NULL;
	c->dtw = c->dth = 0;
	c->refresh_due = 0;
}

static int
cl_grid(struct client *c)
{
	const struct server *s = c->srv;

	cl_ungrid(c);
	if (s->rects == NULL || (c->dirty = calloc((size_t)s->tw * s->th,
	    1)) == NULL) {
		cl_fail(c, "out of memory for the tile map");
		return -1;
	}
	c->dtw = s->tw;
	c->dth = s->th;
	c->full_end = 0;	/* a new size: a new full picture */
	return 0;
}

/*
 * The source changed size.  Before this returns, every client's tile map
 * is either rebuilt for the new grid or gone - dead clients and those
 * that cannot follow included, as the source may report damage at the
 * new size before the loop reaps them.
 */
static void
srv_resized(void *p)
{
	struct server *s = p;
	struct client *c;
	int grid = grid_setup(s);

	logx(s, LOG_INFO, "desktop resized to %dx%d", s->frame.width,
	    s->frame.height);
	for (c = s->clients; c != NULL; c = c->next) {
		cl_ungrid(c);
		if (c->state != ST_NORMAL || c->dead)
			continue;
		if (grid < 0) {
			cl_fail(c, "out of memory after a resize");
			continue;
		}
		if (!c->enc_desktop_size && !c->enc_ext_desktop_size) {
			cl_fail(c, "desktop resized and the viewer cannot "
			    "follow (no DesktopSize encoding)");
			continue;
		}
		if (cl_grid(c) < 0)
			continue;
		dirty_mark(c, 0, 0, s->frame.width, s->frame.height);
		if (!c->size_changed) {
			c->size_reason = 2;	/* by another client */
			c->size_status = 0;
		}
		c->size_changed = 1;
	}
}

static void clip_set(struct server *, const char *, size_t);

/* The source's clipboard, as Latin-1 or as UTF-8 (clip_set()). */
static void
srv_cut_text(void *p, const char *text, size_t len)
{
	char *u;

	if (len > CUT_TEXT_MAX)
		len = CUT_TEXT_MAX;
	if ((u = malloc(2 * len + 1)) == NULL)
		return;
	clip_set(p, u, utf8_of_latin1(text, len, u));
	free(u);
}

static void
srv_cut_text_utf8(void *p, const char *text, size_t len)
{
	clip_set(p, text, len);
}

/* A source's log line, through the server's log (stderr or syslog). */
static void
srv_log(void *p, int prio, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlogx(p, prio, fmt, ap);
	va_end(ap);
}

static void
srv_cursor(void *p, int w, int h, int hotx, int hoty, const uint32_t *argb)
{
	struct server *s = p;
	uint32_t *px = NULL;

	if (w < 0 || h < 0 || w > CURSOR_MAX || h > CURSOR_MAX)
		return;
	if (w > 0 && h > 0) {
		if ((px = malloc((size_t)w * h * sizeof *px)) == NULL)
			return;
		memcpy(px, argb, (size_t)w * h * sizeof *px);
	} else {
		w = h = 0;
	}
	free(s->cursor);
	s->cursor = px;
	s->cursor_w = w;
	s->cursor_h = h;
	s->cursor_x = hotx < 0 || hotx >= w ? 0 : hotx;
	s->cursor_y = hoty < 0 || hoty >= h ? 0 : hoty;
	s->cursor_serial++;
}

/* Tell the source whether some viewer needs the cursor in the picture. */
static void
cursor_policy(struct server *s)
{
	struct client *c;
	int draw = 0;

	if (fb_source.draw_cursor == NULL)
		return;
	/* a view-only viewer must not change what the others see */
	for (c = s->clients; c != NULL; c = c->next)
		if (c->state == ST_NORMAL && !c->dead && !c->enc_cursor &&
		    !c->view_only)
			draw = 1;
	if (draw != s->cursor_drawn) {
		s->cursor_drawn = draw;
		fb_source.draw_cursor(s->fb, draw);
	}
}

/* Cursor pseudo-rectangle: pixels in the client's format, then a mask. */
static void
wr_cursor_rect(struct client *c)
{
	const struct server *s = c->srv;
	size_t mrow = ((size_t)s->cursor_w + 7) / 8;
	uint8_t *p, *m;
	int x, y;

	wr_rect_header(c, s->cursor_x, s->cursor_y, s->cursor_w, s->cursor_h,
	    ENC_CURSOR);
	if ((p = wr_space(c, (size_t)s->cursor_w * s->cursor_h * c->bytes_pp)) ==
	    NULL)
		return;
	for (y = 0; y < s->cursor_h; y++, p += (size_t)s->cursor_w * c->bytes_pp)
		put_pixels(c, p, s->cursor + (size_t)y * s->cursor_w, s->cursor_w);
	if ((m = wr_space(c, mrow * s->cursor_h)) == NULL)
		return;
	memset(m, 0, mrow * s->cursor_h);
	for (y = 0; y < s->cursor_h; y++)
		for (x = 0; x < s->cursor_w; x++)
			if (s->cursor[(size_t)y * s->cursor_w + x] >> 24 >= 0x80)
				m[y * mrow + x / 8] |= (uint8_t)(0x80 >> (x % 8));
	c->cursor_sent = s->cursor_serial;
}

/*
 * Tall rectangles cut into bands of whole tile rows and wide ones into
 * columns (Tight takes RECT_MAX_W at most), the right and bottom edges
 * clipped: out[0..n) grows, never past one rectangle per tile.
 */
static int
cut_rects(const struct server *s, struct rect *out, uint8_t *kind, int n)
{
	int i, x, y, m = n;

	for (i = 0; i < m; i++) {		/* columns */
		for (x = out[i].x + RECT_MAX_W; x < out[i].x + out[i].w;
		    x += RECT_MAX_W) {
			out[n] = out[i];
			out[n].x = x;
			out[n].w = out[i].x + out[i].w - x < RECT_MAX_W ?
			    out[i].x + out[i].w - x : RECT_MAX_W;
			kind[n++] = kind[i];
		}
		if (out[i].w > RECT_MAX_W)
			out[i].w = RECT_MAX_W;
	}
	for (i = 0, m = n; i < m; i++) {	/* bands */
		int band = BAND_PIXELS / out[i].w / TILE * TILE;

		if (band < TILE)
			band = TILE;
		for (y = out[i].y + band; y < out[i].y + out[i].h; y += band) {
			out[n] = out[i];
			out[n].y = y;
			out[n].h = out[i].y + out[i].h - y < band ?
			    out[i].y + out[i].h - y : band;
			kind[n++] = kind[i];
		}
		if (out[i].h > band)
			out[i].h = band;
	}
	for (i = 0; i < n; i++) {		/* the screen's edges */
		struct rect *r = &out[i];

		if (r->x + r->w > s->frame.width)
			r->w = s->frame.width - r->x;
		if (r->y + r->h > s->frame.height)
			r->h = s->frame.height - r->y;
	}
	return n;
}

/*
 * Solid areas of the kind grid: tiles of one colour grown right, then
 * down while the whole run repeats; those of SOLID_MIN pixels or more
 * become rectangles (their tiles leave the grid), the others count as
 * few-coloured.
 */
static int
solid_rects(struct server *s, struct rect *out, uint8_t *kind)
{
	const struct encscratch *e = &s->enc;
	uint8_t *g = s->kgrid;
	int n = 0, tx, ty, x1, y1, j;

	for (ty = 0; ty < s->th; ty++)
		for (tx = 0; tx < s->tw; tx++) {
			size_t i = (size_t)ty * s->tw + tx;
			uint32_t v = e->tpal[i * TILE_PAL];

#define SAME(t) ((g[t] & G_SOLID) && e->tpal[(t) * TILE_PAL] == v)
			if (!(g[i] & G_SOLID))
				continue;
			for (x1 = tx + 1; x1 < s->tw && SAME(i + x1 - tx); x1++)
				;
			for (y1 = ty + 1; y1 < s->th; y1++) {
				for (j = tx; j < x1 && SAME((size_t)y1 * s->tw +
				    j); j++)
					;
				if (j < x1)
					break;
			}
#undef SAME
			if ((x1 - tx) * (y1 - ty) * TILE * TILE < SOLID_MIN) {
				g[i] &= (uint8_t)~G_SOLID;
				continue;
			}
			for (j = ty; j < y1; j++)
				memset(g + (size_t)j * s->tw + tx, 0,
				    (size_t)(x1 - tx));
			out[n].x = tx;
			out[n].y = ty;
			out[n].w = x1 - tx;
			out[n].h = y1 - ty;
			kind[n++] = R_SOLID;
		}
	return n;
}

/*
 * The client's tiles with `flag` (taken from its map) as rectangles at
 * s->rects[first...], kinds at s->rkind[first...].  For a client whose
 * choice depends on content (deep) the tiles are analysed (shared by
 * every client: once per content) and sorted first: solid areas, then
 * the few-coloured and the many-coloured tiles, each as runs in a row
 * merged down equal runs.  So a rectangle is one kind of thing - text
 * apart from photographs, a scroll bar apart from the text.
 */
static int
collect_rects(struct server *s, struct client *c, uint8_t flag, int first,
    int deep)
{
	struct rect *out = s->rects + first;
	uint8_t *kind = s->rkind + first;
	size_t i, nt = (size_t)s->tw * s->th;
	int n = 0, k;

	if (!deep) {
		n = grid_rects(c->dirty, s->tw, s->th, flag, out, s->open_a,
		    s->open_b);
		memset(kind, R_ANY, (size_t)n);
	} else {
		for (i = 0; i < nt; i++) {
			s->kgrid[i] = 0;
			if (!(c->dirty[i] & flag))
				continue;
			c->dirty[i] &= (uint8_t)~flag;
			tile_analyse(s, i, (int)(i % s->tw), (int)(i / s->tw));
			s->kgrid[i] = s->enc.tncol[i] == 1 ? G_SOLID | G_FEW :
			    s->enc.tncol[i] <= BLOCK_FEW ? G_FEW : G_MANY;
		}
		n = solid_rects(s, out, kind);
		k = grid_rects(s->kgrid, s->tw, s->th, G_FEW, out + n,
		    s->open_a, s->open_b);
		memset(kind + n, R_FEW, (size_t)k);
		n += k;
		k = grid_rects(s->kgrid, s->tw, s->th, G_MANY, out + n,
		    s->open_a, s->open_b);
		memset(kind + n, R_MANY, (size_t)k);
		n += k;
	}
	for (k = 0; k < n; k++) {	/* tiles to pixels */
		out[k].x *= TILE;
		out[k].y *= TILE;
		out[k].w *= TILE;
		out[k].h *= TILE;
	}
	return cut_rects(s, out, kind, n);
}

static void
wr_size_rect(struct client *c)
{
	const struct server *s = c->srv;

	if (c->enc_ext_desktop_size) {
		wr_rect_header(c, c->size_reason, c->size_status,
		    s->frame.width, s->frame.height, ENC_EXT_DESKTOP_SIZE);
		wr_u8(c, 1);		/* one screen */
		wr_bytes(c, "\0\0\0", 3);
		wr_u32(c, 0);		/* its id */
		wr_u16(c, 0);
		wr_u16(c, 0);
		wr_u16(c, (uint16_t)s->frame.width);
		wr_u16(c, (uint16_t)s->frame.height);
		wr_u32(c, 0);		/* flags */
	} else {
		wr_rect_header(c, 0, 0, s->frame.width, s->frame.height,
		    ENC_DESKTOP_SIZE);
	}
}

/*
 * Does this client's choice depend on what a rectangle is made of (more
 * than one encoding to weigh, or Tight, which needs the palettes)?  If
 * not, its plans skip the analysis: one sub per rectangle.
 */
static int
cl_deep(const struct client *c)
{
	int m, n = 0;

	if (c->rank[M_TIGHT] >= 0 && tight_usable(&c->pf))
		return 1;
	for (m = 0; m < M_TIGHT; m++)
		n += c->rank[m] >= 0;
	return n > 1;
}

/*
 * Lossy tiles that stayed unchanged REFRESH_MS are due for a lossless
 * copy (T_REFRESH); the next check is when the youngest of the rest will
 * be quiet long enough.
 */
static void
refresh_scan(struct client *c, long long now)
{
	const struct server *s = c->srv;
	size_t i, n = (size_t)c->dtw * c->dth;
	long long due = 0;

	if (c->refresh_due == 0 || now < c->refresh_due)
		return;
	for (i = 0; i < n; i++) {
		uint8_t *t = &c->dirty[i];

		if ((*t & (T_LOSSY | T_CHANGED | T_REFRESH)) != T_LOSSY)
			continue;
		if (now - s->enc.tms[i] >= REFRESH_MS)
			*t |= T_REFRESH;
		else if (due == 0 || s->enc.tms[i] + REFRESH_MS < due)
			due = s->enc.tms[i] + REFRESH_MS;
	}
	c->refresh_due = due;
}

/* Give the tiles of rects[from..to) their flag back (no room this time). */
static void
tiles_again(struct client *c, const struct rect *r, int n, uint8_t flag)
{
	int i, tx, ty;

	for (i = 0; i < n; i++, r++)
		for (ty = r->y / TILE; ty <= (r->y + r->h - 1) / TILE; ty++)
			for (tx = r->x / TILE; tx <= (r->x + r->w - 1) / TILE;
			    tx++)
				c->dirty[(size_t)ty * c->dtw + tx] |= flag;
}

/*
 * One FramebufferUpdate, if the client waits and there is news: changed
 * tiles (lossy encodings allowed), then those due for a lossless
 * refresh.  The header counts the rectangles as sent (a plan may cut one
 * into several), so every plan comes first - unless the viewer takes
 * LastRect (Tight's viewers do): then the count is 0xffff, a LastRect
 * ends the update, and the first rectangle goes out while the next is
 * being planned.
 */
static void
cl_update(struct client *c)
{
	struct server *s = c->srv;
	long long now = mono_ms();
	int i, j, n, nch, total, cursor, deep = cl_deep(c);

	if (c->size_changed) {
		/* RFB: a new size is the last rectangle of its update; the
		 * new picture follows in the next one without waiting for the
		 * viewer's request, as it lost its old picture anyway */
		wr_u8(c, SMSG_UPDATE);
		wr_u8(c, 0);
		wr_u16(c, 1);
		wr_size_rect(c);
		c->size_changed = c->size_announce = 0;
		return;
	}
	if (c->dirty == NULL || c->dtw != s->tw || c->dth != s->th) {
		cl_fail(c, "internal: tile map out of step with the screen");
		return;
	}
	link_sample(c, now);
	refresh_scan(c, now);
	nch = collect_rects(s, c, T_CHANGED, 0, deep);
	n = nch + collect_rects(s, c, T_REFRESH, nch, deep);
	cursor = c->enc_cursor && c->cursor_sent != s->cursor_serial;
	if (n == 0 && !c->size_announce && !cursor)
		return;
	s->enc.epoch++;
	for (i = total = 0; i < n && !c->enc_last_rect; i++) {
		if ((s->plans[i] = plan_get(s, &s->rects[i], s->rkind[i])) ==
		    NULL) {
			cl_fail(c, "out of memory for an update's plan");
			return;
		}
		if (total + s->plans[i]->nsub > UPDATE_RECTS_MAX) {
			tiles_again(c, s->rects + i, nch > i ? nch - i : 0,
			    T_CHANGED);
			tiles_again(c, s->rects + (nch > i ? nch : i),
			    n - (nch > i ? nch : i), T_REFRESH);
			n = i;
			break;
		}
		total += s->plans[i]->nsub;
	}
	wr_u8(c, SMSG_UPDATE);
	wr_u8(c, 0);
	wr_u16(c, (uint16_t)(c->enc_last_rect ? 0xffff :
	    total + c->size_announce + cursor));
	if (cursor)
		wr_cursor_rect(c);
	for (i = 0; i < n && !c->dead; i++) {
		struct plan *p = c->enc_last_rect ?
		    plan_get(s, &s->rects[i], s->rkind[i]) : s->plans[i];

		if (p == NULL) {
			cl_fail(c, "out of memory for an update's plan");
			break;
		}
		for (j = 0; j < p->nsub && !c->dead; j++) {
			send_sub(c, p, &p->sub[j], i < nch, now);
			if (buf_used(&c->out) >= OUT_FLUSH)
				cl_flush(c);
		}
	}
	if (c->size_announce)
		wr_size_rect(c);
	if (c->enc_last_rect)
		wr_rect_header(c, 0, 0, 0, 0, ENC_LAST_RECT);
	c->size_announce = 0;
	c->want_update = 0;
	if (c->full_asked) {	/* where this full picture ends */
		c->full_asked = 0;
		c->full_end = c->wrote + buf_used(&c->out);
	}
	plans_trim(s, 0);
}

/* Wants an update: it asked, or we pace it (ContinuousUpdates). */
static int
cl_waiting(const struct client *c)
{
	return c->state == ST_NORMAL && !c->dead &&
	    (c->want_update || c->cu_on);
}

/* ---------------------------------------------------------------------
 * Pacing.  A viewer that asks for every update paces itself: it has at
 * most one update in flight, and OUT_LOW bounds what waits here for it.
 * A ContinuousUpdates viewer (TigerVNC, noVNC) is paced by us, or a slow
 * link would fill with stale frames.  Each update goes out between two
 * fences of ours (pings: Request and BlockBefore, a payload we know
 * again); the viewer answers one once it has processed everything
 * before it.  From the answers come the round trip of the empty link
 * (the lowest seen) and a window of bytes we let be in flight, which
 * TCP Vegas moves: doubled while the round trip stays near the empty
 * link's, grown while it stays close, cut when it rises (the link's
 * buffers filling).  TigerVNC's Congestion.cxx is the model.  A new
 * update is made only while the window has room, so a slow link gets
 * the freshest picture at the rate it carries, and the damage waits in
 * the tile map meanwhile, costing nothing.  Between answers the viewer's
 * progress is taken to grow at the window's rate, never past the next
 * unanswered ping nor, where the system tells (Linux TIOCOUTQ, BSD
 * FIONWRITE), past what the socket has delivered.  -o fps caps the rate.
 * A viewer that never answers gets at most FENCES_MAX fences, and after
 * FENCE_WAIT_MS is paced by its output queue, as the request path is.
 * ------------------------------------------------------------------- */

#define PING_LEN	6	/* "vs" and the ping's 32-bit number */
#define PACE_RECHECK_MS	10	/* window full, round trip unknown: look
				   again after this (the socket's queue
				   drains without telling us) */

/* Bytes handed to this viewer's stream so far. */
static uint64_t
stream_pos(const struct client *c)
{
	return c->wrote + buf_used(&c->out);
}

/* Bytes the socket holds that the peer has not acknowledged (Linux) or
 * that are not sent (BSD); -1 where the system cannot say. */
static int
sock_queued(const struct client *c)
{
	int n = -1;

#if defined(__linux__) && defined(TIOCOUTQ)
	if (ioctl(c->wfd, TIOCOUTQ, &n) < 0)
		n = -1;
#elif defined(FIONWRITE)
	if (ioctl(c->wfd, FIONWRITE, &n) < 0)
		n = -1;
#endif
	return n;
}

static void
pace_reset(struct pacing *p, long long now)
{
	p->base_rtt = -1;
	if (p->cwnd == 0 || p->cwnd > CWND_INITIAL)
		p->cwnd = CWND_INITIAL;
	p->slow_start = 1;
	p->samples = 0;
	p->min_rtt = p->min_cong_rtt = INT_MAX;
	p->t_adjust = now;
}

/* Note the stream's growth; after a pause the link is measured again
 * (it may have changed, and a window sized for a busy link is wrong for
 * a burst after silence). */
static void
pace_note(struct client *c, long long now)
{
	struct pacing *p = &c->pc;
	uint64_t pos = stream_pos(c);
	long long idle = now - (p->t_sent > p->t_acked ? p->t_sent :
	    p->t_acked);	/* nothing sent, nothing on its way */

	if (pos != p->pos_seen) {
		p->pos_seen = pos;
		p->t_sent = now;
	} else if (p->n == 0 && p->base_rtt >= 0 && idle > 100 &&
	    idle > 2LL * p->base_rtt) {
		pace_reset(p, now);
		p->t_sent = now;
	}
}

/* How far the viewer has probably got in the stream. */
static uint64_t
pace_acked(const struct client *c, long long now)
{
	const struct pacing *p = &c->pc;
	uint64_t a = p->acked, cap = stream_pos(c);

	if (p->n > 0)
		cap = p->ping[p->head].pos;
	if (p->base_rtt > 0)
		a += (uint64_t)(now - p->t_acked) * p->cwnd /
		    (unsigned)p->base_rtt;
	else if (p->n == 0)
		a = cap;	/* nothing to measure it by: delivered */
	if (a > cap)
		a = cap;
	if (p->sockq >= 0 && c->wrote >= (uint64_t)p->sockq &&
	    a > c->wrote - (uint64_t)p->sockq)
		a = c->wrote - (uint64_t)p->sockq;
	return a < p->acked ? p->acked : a;
}

static void
wr_fence(struct client *c, uint32_t flags, const uint8_t *data, size_t len)
{
	wr_u8(c, SMSG_FENCE);
	wr_bytes(c, "\0\0\0", 3);
	wr_u32(c, flags);
	wr_u8(c, (uint8_t)len);
	wr_bytes(c, data, len);
}

/* One of our fences, unless the viewer does not answer them or has
 * FENCES_MAX unanswered.  1 if it went out. */
static int
pace_ping(struct client *c, long long now)
{
	struct pacing *p = &c->pc;
	uint8_t d[PING_LEN] = { 'v', 's', (uint8_t)(p->seq >> 24),
	    (uint8_t)(p->seq >> 16), (uint8_t)(p->seq >> 8), (uint8_t)p->seq };
	uint64_t in;
	struct ping *pg;

	if (!c->fence_told || c->fence_deaf || p->n == FENCES_MAX)
		return 0;
	pace_note(c, now);
	in = stream_pos(c) - pace_acked(c, now);
	wr_fence(c, FENCE_REQUEST | FENCE_BLOCK_BEFORE, d, sizeof d);
	pg = &p->ping[(p->head + p->n++) % FENCES_MAX];
	pg->seq = p->seq++;
	pg->t = now;
	pg->pos = stream_pos(c);
	pg->congested = in >= p->cwnd;
	in = in > p->cwnd ? in - p->cwnd : 0;
	pg->ahead = in > UINT32_MAX ? UINT32_MAX : (uint32_t)in;
	if (p->n == 1)
		p->fence_due = now + FENCE_WAIT_MS;
	p->pings++;
	pace_note(c, now);
	return 1;
}

/* Take back the ping just queued (nothing followed it). */
static void
pace_unping(struct client *c)
{
	c->out.len -= 9 + PING_LEN;
	c->pc.n--;
	c->pc.seq--;
	c->pc.pings--;
	if (c->pc.n == 0)
		c->pc.fence_due = 0;
	c->pc.pos_seen = stream_pos(c);
}

/* TCP Vegas on the round trips since the last change of the window. */
static void
pace_adjust(struct client *c, long long now)
{
	struct pacing *p = &c->pc;
	long long w = p->cwnd;
	int d = p->min_rtt - p->base_rtt, dc = INT_MAX;

	if (p->min_cong_rtt != INT_MAX)
		dc = p->min_cong_rtt - p->base_rtt;
	if (d > 100 && d > p->base_rtt / 2) {
		/* a spike this big is loss on a lossless transport */
		w = w * p->base_rtt / p->min_rtt;
		p->slow_start = 0;
	} else if (p->slow_start) {
		if (d > 25) {		/* the link's buffers are filling */
			w = w * p->base_rtt / p->min_rtt;
			p->slow_start = 0;
		} else if (dc < 25) {	/* a full window went through */
			w *= 2;
		}
	} else if (d > 50) {
		w -= 4096;
	} else if (dc < 5) {
		w += 8192;
	} else if (dc < 25) {
		w += 4096;
	}
	p->cwnd = w < CWND_MIN ? CWND_MIN : w > CWND_MAX ? CWND_MAX :
	    (uint32_t)w;
	logx(c->srv, LOG_DEBUG, "peer=%s pacing: round trip %d/%d ms (empty "
	    "link %d), window %u KiB%s", c->peer, p->min_rtt,
	    p->min_cong_rtt == INT_MAX ? -1 : p->min_cong_rtt, p->base_rtt,
	    p->cwnd / 1024, p->slow_start ? " (slow start)" : "");
	p->samples = 0;
	p->min_rtt = p->min_cong_rtt = INT_MAX;
	p->t_adjust = now;
}

/* The viewer answered a fence: it must be our oldest unanswered one. */
static void
pace_answer(struct client *c, uint32_t flags, const uint8_t *d, size_t len,
    long long now)
{
	struct pacing *p = &c->pc;
	struct ping pg;
	int rtt, adj;

	if (p->n == 0) {
		cl_fail(c, "ServerFence answer, but none of ours is unanswered");
		return;
	}
	pg = p->ping[p->head];
	/* the answer keeps our payload and at most our flags */
	if (len != PING_LEN || d[0] != 'v' || d[1] != 's' ||
	    ((uint32_t)d[2] << 24 | (uint32_t)d[3] << 16 | (uint32_t)d[4] << 8 |
	    d[5]) != pg.seq || (flags & ~FENCE_BLOCK_BEFORE) != 0) {
		cl_fail(c, "ServerFence answer (flags 0x%lx, %zu bytes) is not "
		    "our oldest unanswered fence", (unsigned long)flags, len);
		return;
	}
	p->head = (p->head + 1) % FENCES_MAX;
	p->n--;
	p->answers++;
	p->fence_due = p->n > 0 ? p->ping[p->head].t + FENCE_WAIT_MS : 0;
	if (c->fence_deaf) {
		c->fence_deaf = 0;
		pace_reset(p, now);
		logx(c->srv, LOG_INFO, "peer=%s answers fences again: paced "
		    "by them", c->peer);
	}
	p->acked = pg.pos;
	p->t_acked = now;
	rtt = now - pg.t > INT_MAX / 2 ? INT_MAX / 2 : (int)(now - pg.t);
	if (rtt < 1)
		rtt = 1;
	if (p->base_rtt < 0 || rtt < p->base_rtt)
		p->base_rtt = rtt;
	if (pg.t < p->t_adjust)
		return;		/* it measured an older window */
	/* less the time the bytes queued beyond the window took */
	adj = (int)((uint64_t)pg.ahead * (unsigned)p->base_rtt / p->cwnd);
	rtt = adj < rtt ? rtt - adj : 1;
	if (rtt < p->base_rtt)
		rtt = p->base_rtt;
	if (rtt < p->min_rtt)
		p->min_rtt = rtt;
	if (pg.congested && rtt < p->min_cong_rtt)
		p->min_cong_rtt = rtt;
	if (++p->samples >= 3)	/* fewer are noise */
		pace_adjust(c, now);
}

/* The oldest ping had FENCE_WAIT_MS: unanswered although delivered, the
 * viewer does not answer fences. */
static void
pace_overdue(struct client *c, long long now)
{
	struct pacing *p = &c->pc;
	const struct ping *pg = &p->ping[p->head];
	int q;

	p->fence_due = 0;
	if (p->n == 0 || c->fence_deaf)
		return;
	if (now - pg->t < FENCE_WAIT_MS) {
		p->fence_due = pg->t + FENCE_WAIT_MS;
		return;
	}
	q = sock_queued(c);
	if (c->wrote < pg->pos || (q > 0 && c->wrote - (uint64_t)q < pg->pos)) {
		p->fence_due = now + FENCE_WAIT_MS / 5;	/* a slow link */
		return;
	}
	c->fence_deaf = 1;
	logx(c->srv, LOG_NOTICE, "peer=%s left %d fences unanswered for %lld "
	    "ms: paced by its output queue from now on", c->peer, p->n,
	    now - pg->t);
}

/* The first time a viewer lists Fence, and ContinuousUpdates with it:
 * rfbproto's answers, a ServerFence and an EndOfContinuousUpdates. */
static void
cu_announce(struct client *c)
{
	long long now = mono_ms();

	if (c->enc_fence && !c->fence_told) {
		c->fence_told = 1;
		pace_reset(&c->pc, now);
		c->pc.acked = stream_pos(c);
		c->pc.t_acked = now;
		c->pc.sockq = -1;
		pace_ping(c, now);	/* the round trip of the empty link */
	}
	if (c->enc_cu && c->fence_told && !c->cu_told) {
		c->cu_told = 1;
		wr_u8(c, SMSG_END_CU);
	}
}

/* A paced viewer's session in one line. */
static void
pace_log(const struct client *c)
{
	const struct pacing *p = &c->pc;

	if (c->fence_told)
		logx(c->srv, LOG_INFO, "paced peer=%s updates=%lu fences=%lu "
		    "answered=%lu window=%u rtt=%d%s", c->peer, p->updates,
		    p->pings, p->answers, p->cwnd, p->base_rtt,
		    c->fence_deaf ? " deaf" : "");
}

/*
 * May c get an update now?  Sets c->pace_at: 0 if so, else when to look
 * again, LLONG_MAX when only an event can tell (a request, an answer,
 * the socket taking the queue).
 */
static int
cl_paced(struct client *c, long long now)
{
	struct pacing *p = &c->pc;
	uint64_t in;
	long long wait;

	c->pace_at = LLONG_MAX;
	if (!c->cu_on) {
		if (c->want_update && buf_used(&c->out) < OUT_LOW)
			c->pace_at = 0;
		return c->pace_at == 0;
	}
	if (buf_used(&c->out) > 0)
		cl_flush(c);
	if (c->fence_deaf) {
		if (buf_used(&c->out) >= OUT_LOW)
			return 0;
	} else if (buf_used(&c->out) > 0 || c->tls_wpending) {
		return 0;	/* the last update is not out yet */
	}
	if (now < c->next_frame) {
		c->pace_at = c->next_frame;
		return 0;
	}
	if (c->fence_deaf) {
		c->pace_at = 0;
		return 1;
	}
	p->sockq = sock_queued(c);
	pace_note(c, now);
	in = stream_pos(c) - pace_acked(c, now);
	if (in < p->cwnd) {
		c->pace_at = 0;
		return 1;
	}
	/* when the window should have drained; with no round trip known
	 * (a reset after a pause, while the socket still holds a big frame)
	 * nothing else would wake us: the kernel's queue drains without an
	 * event, so look again soon */
	wait = p->base_rtt > 0 ? (long long)((in - p->cwnd) *
	    (unsigned)p->base_rtt / p->cwnd) + 2 : PACE_RECHECK_MS;
	c->pace_at = now + (wait > 1000 ? 1000 : wait);
	return 0;
}

/*
 * cl_update() for a ContinuousUpdates viewer: tiles outside its area
 * (and outside a non-incremental request) are held back and stay dirty;
 * the update goes between two pings.
 */
static int
cu_hold(struct client *c)
{
	struct server *s = c->srv;
	size_t n = (size_t)c->dtw * c->dth, i;
	struct rect a = c->cu_area, q = c->req_area;
	int tx, ty, x0, y0, x1, y1;

	if (c->dirty == NULL || n == 0)
		return 0;
	if (!rect_clip(&a.x, &a.y, &a.w, &a.h, s->frame.width,
	    s->frame.height))
		a.w = a.h = 0;
	if (!c->want_update || !rect_clip(&q.x, &q.y, &q.w, &q.h,
	    s->frame.width, s->frame.height))
		q.w = q.h = 0;
	if (a.x == 0 && a.y == 0 && a.w == s->frame.width &&
	    a.h == s->frame.height)
		return 0;	/* all of it: nothing to hold */
	if (s->cu_hold_n < n) {
		uint8_t *h = realloc(s->cu_hold, n);

		if (h == NULL)
			return 0;	/* then it gets more than it asked */
		s->cu_hold = h;
		s->cu_hold_n = n;
	}
	for (ty = 0, i = 0; ty < c->dth; ty++)
		for (tx = 0; tx < c->dtw; tx++, i++) {
			x0 = tx * TILE;
			y0 = ty * TILE;
			x1 = x0 + TILE;
			y1 = y0 + TILE;
			s->cu_hold[i] = 0;
			if ((a.w > 0 && x0 < a.x + a.w && a.x < x1 &&
			    y0 < a.y + a.h && a.y < y1) || (q.w > 0 &&
			    x0 < q.x + q.w && q.x < x1 && y0 < q.y + q.h &&
			    q.y < y1))
				continue;
			s->cu_hold[i] = c->dirty[i];
			c->dirty[i] = 0;
		}
	return 1;
}

static void
cu_update(struct client *c, long long now)
{
	struct server *s = c->srv;
	int held = cu_hold(c), pinged;
	uint64_t mark;
	size_t i;

	pinged = pace_ping(c, now);	/* measures the link, window open */
	mark = stream_pos(c);
	cl_update(c);
	if (held && c->dirty != NULL)
		for (i = 0; i < (size_t)c->dtw * c->dth; i++)
			c->dirty[i] |= s->cu_hold[i];
	if (c->dead)
		return;
	if (stream_pos(c) == mark) {	/* no news */
		if (pinged)
			pace_unping(c);
		return;
	}
	pace_ping(c, now);	/* answered once the viewer has it all */
	c->next_frame = now + 1000 / s->fps;
	c->pc.updates++;
}

/* ---------------------------------------------------------------------
 * Client messages (RFB 7.5): ClientInit, then a table indexed by message
type.
 * ------------------------------------------------------------------- */

/* -- ClientInit / ServerInit -- */

static void
close_others(struct client *c)
{
	struct client *o;

	for (o = c->srv->clients; o != NULL; o = o->next)
		if (o != c && o->state == ST_NORMAL)
			cl_fail(o, "another viewer asked for exclusive access");
}

static size_t h_message(struct client *, uint8_t *, size_t);
static int cl_input_dropped(struct client *, const char *);
static void ext_announce(struct client *);
static void clip_message(struct client *, struct rd *, uint32_t);

static size_t
h_client_init(struct client *c, uint8_t *p, size_t n)
{
	const struct server *s = c->srv;
	struct rd r = rd_of(p, n);
	int shared = rd_u8(&r) != 0;

	/* exclusive access ends other sessions: not for a watcher */
	if (!shared && !cl_input_dropped(c, "request for exclusive access"))
		close_others(c);
	pixfmt_apply(c, &native_pf);
	memset(c->rank, -1, sizeof c->rank);	/* Raw until SetEncodings */
	c->rank[M_RAW] = 0;
	c->quality = -1;
	if ((s->rects == NULL && grid_setup(c->srv) < 0) || cl_grid(c) < 0) {
		cl_fail(c, "out of memory for the tile grid");
		return n;
	}
	wr_u16(c, (uint16_t)s->frame.width);
	wr_u16(c, (uint16_t)s->frame.height);
	wr_pixfmt(c, &native_pf);
	wr_string(c, s->name);
	c->state = ST_NORMAL;
	c->deadline = 0;
	cursor_policy(c->srv);
	dirty_mark(c, 0, 0, s->frame.width, s->frame.height);
	cl_expect(c, h_message, 1);
	logx(s, LOG_INFO, "session peer=%s shared=%d %dx%d", c->peer, shared,
	    s->frame.width, s->frame.height);
	return rd_used(&r, n);
}

static void
start_init(struct client *c)
{
	c->state = ST_INIT;
	cl_expect(c, h_client_init, 1);
}

static void
msg_set_pixel_format(struct client *c, struct rd *r)
{
	struct pixfmt pf;
	const char *why;
	int i;

	rd_bytes(r, 3);
	pf.bpp = rd_u8(r);
	pf.depth = rd_u8(r);
	pf.bigendian = rd_u8(r) != 0;
	pf.truecolour = rd_u8(r) != 0;
	for (i = 0; i < 3; i++)
		pf.max[i] = rd_u16(r);
	for (i = 0; i < 3; i++)
		pf.shift[i] = rd_u8(r);
	if ((why = pixfmt_check(&pf)) != NULL) {
		cl_fail(c, "SetPixelFormat bpp=%u: %s", pf.bpp, why);
		return;
	}
	pixfmt_apply(c, &pf);
	c->full_end = 0;	/* a picture in the old format is no answer */
	logx(c->srv, LOG_DEBUG, "peer=%s pixel format %ubpp max %u/%u/%u "
	    "shift %u/%u/%u %s", c->peer, pf.bpp, pf.max[0], pf.max[1],
	    pf.max[2], pf.shift[0], pf.shift[1], pf.shift[2],
	    pf.bigendian ? "big-endian" : "little-endian");
}

static size_t
len_set_encodings(struct client *c, struct rd *r)
{
	size_t n;

	rd_u8(r);
	n = rd_u16(r);
	if (n > ENCODINGS_MAX) {
		cl_fail(c, "SetEncodings with %zu entries (limit %d)", n,
		    ENCODINGS_MAX);
		return 0;
	}
	return 4 * n;
}

static void
msg_set_encodings(struct client *c, struct rd *r)
{
	char list[64];
	unsigned n, i;
	int had_ext = c->enc_ext_desktop_size, k, m, first = -1;

	rd_u8(r);
	n = rd_u16(r);
	c->enc_desktop_size = c->enc_ext_desktop_size = c->enc_cursor = 0;
	c->enc_last_rect = c->tight_nograd = 0;
	c->enc_qemu_key = c->enc_ext_clip = 0;
	c->enc_fence = c->enc_cu = 0;
	c->zasked = 0;
	c->quality = -1;
	for (m = 0; m < NMODES; m++)
		c->rank[m] = -1;
	for (i = 0; i < n; i++) {
		int32_t e = (int32_t)rd_u32(r);

		/* RFB: the list is in the viewer's order of preference; it
		 * breaks near-ties in choose() */
		for (k = 0; k < (int)nitems(encoders); k++)
			if (encoders[k].num == e &&
			    c->rank[encoders[k].mode] < 0) {
				c->rank[encoders[k].mode] =
				    (int8_t)(i < 127 ? i : 127);
				if (first < 0)
					first = encoders[k].mode;
			}
		if (e >= ENC_COMPRESS_0 && e <= ENC_COMPRESS_9 && !c->zasked)
			c->zasked = e - ENC_COMPRESS_0 + 1;
		else if (e >= ENC_QUALITY_0 && e <= ENC_QUALITY_9 &&
		    c->quality < 0)
			c->quality = e - ENC_QUALITY_0;
		else if (e == ENC_DESKTOP_SIZE)
			c->enc_desktop_size = 1;
		else if (e == ENC_EXT_DESKTOP_SIZE)
			c->enc_ext_desktop_size = 1;
		else if (e == ENC_CURSOR)
			c->enc_cursor = 1;
		else if (e == ENC_LAST_RECT)
			c->enc_last_rect = 1;
		/* TightPNG is noVNC's alone, and noVNC before 1.4 (Debian
		 * 12's) throws at the gradient filter */
		else if (e == ENC_TIGHT_PNG)
			c->tight_nograd = 1;
		else if (e == ENC_QEMU_KEY)
			c->enc_qemu_key = 1;
		else if (e == ENC_EXT_CLIPBOARD)
			c->enc_ext_clip = 1;
		else if (e == ENC_FENCE)
			c->enc_fence = 1;
		else if (e == ENC_CONT_UPDATES)
			c->enc_cu = 1;
	}
	/* RFB: every viewer takes Raw; it is the last resort if none of
	 * ours is listed, else only where the viewer listed it */
	if (first < 0) {
		c->rank[M_RAW] = 0;
		first = M_RAW;
	}
	c->rank[M_JPEG] = c->rank[M_TIGHT];
	for (m = 0, list[0] = '\0'; m < M_JPEG; m++)
		if (c->rank[m] >= 0 && m != first)
			snprintf(list + strlen(list), sizeof list - strlen(list),
			    ",%s", modes[m].name);
	logx(c->srv, LOG_DEBUG, "peer=%s encoding %s%s level %d quality %d",
	    c->peer, modes[first].name, list, c->zasked > 0 ? c->zasked - 1 :
	    c->srv->zlevel, c->quality);
	c->cursor_sent = 0;	/* (re)send the shape if it is wanted */
	cursor_policy(c->srv);
	/* ExtendedDesktopSize: the first update announces the screen */
	if (c->enc_ext_desktop_size && !had_ext) {
		c->size_announce = 1;
		c->size_reason = 0;
		c->size_status = 0;
	}
	cu_announce(c);
	ext_announce(c);
}

/*
 * A non-incremental request for an area whose whole picture, sent for the
 * last one, the viewer has not all taken off the link yet: it asked before
 * it saw that picture, which gives it all it asked for, and the tile map
 * holds what changed since.  gtk-vnc repeats its first (non-incremental)
 * request on the cursor that comes ahead of the first picture; answering
 * that in full sent the whole screen twice at connect.
 */
static int
full_on_its_way(struct client *c, int x, int y, int w, int h)
{
	const struct rect *a = &c->full_area;
	int sq;

	if (c->full_end == 0 || x < a->x || y < a->y ||
	    x + w > a->x + a->w || y + h > a->y + a->h)
		return 0;
	sq = sock_queued(c);
	return c->wrote - (uint64_t)(sq > 0 ? sq : 0) < c->full_end;
}

static void
msg_update_request(struct client *c, struct rd *r)
{
	const struct server *s = c->srv;
	int incremental = rd_u8(r);
	int x = rd_u16(r), y = rd_u16(r), w = rd_u16(r), h = rd_u16(r);

	/* clip to the screen */
	if (x > s->frame.width)
		x = s->frame.width;
	if (y > s->frame.height)
		y = s->frame.height;
	if (w > s->frame.width - x)
		w = s->frame.width - x;
	if (h > s->frame.height - y)
		h = s->frame.height - y;
	if (c->cu_on && incremental)
		return;		/* rfbproto: ignored while we pace it */
	if (!incremental && !full_on_its_way(c, x, y, w, h)) {
		dirty_mark(c, x, y, w, h);
		c->full_area = (struct rect){ x, y, w, h };
		c->full_asked = 1;
	}
	if (c->cu_on) {		/* sent with the area, even outside it */
		struct rect *q = &c->req_area;

		if (c->want_update && q->w > 0 && q->h > 0) {
			int x1 = q->x + q->w > x + w ? q->x + q->w : x + w;
			int y1 = q->y + q->h > y + h ? q->y + q->h : y + h;

			x = q->x < x ? q->x : x;
			y = q->y < y ? q->y : y;
			w = x1 - x;
			h = y1 - y;
		}
		q->x = x;
		q->y = y;
		q->w = w;
		q->h = h;
	}
	c->want_update = 1;
}

/* EnableContinuousUpdates (rfbproto 7.5.9): only after we offered them */
static void
msg_enable_cu(struct client *c, struct rd *r)
{
	int enable = rd_u8(r);
	struct rect a;

	a.x = rd_u16(r);
	a.y = rd_u16(r);
	a.w = rd_u16(r);
	a.h = rd_u16(r);
	if (r->err)
		return;
	if (!c->cu_told) {
		cl_fail(c, "EnableContinuousUpdates, but we did not offer them "
		    "(its SetEncodings lacked ContinuousUpdates or Fence)");
		return;
	}
	if (!enable) {
		if (c->cu_on)
			logx(c->srv, LOG_INFO, "peer=%s continuous updates off",
			    c->peer);
		c->cu_on = 0;
		wr_u8(c, SMSG_END_CU);	/* at once, even if they were off */
		return;
	}
	if (!c->cu_on || memcmp(&a, &c->cu_area, sizeof a) != 0)
		logx(c->srv, LOG_INFO, "peer=%s continuous updates on in "
		    "%dx%d+%d+%d", c->peer, a.w, a.h, a.x, a.y);
	c->cu_area = a;		/* clipped to the screen when used */
	if (!c->cu_on) {
		c->want_update = 0;	/* pending requests: the area now */
		/* what the request path sent (the first frame, megabytes
		 * perhaps) is measured by a fence after it, or the window
		 * would count it as in flight for many round trips */
		if (stream_pos(c) > c->pc.acked)
			pace_ping(c, mono_ms());
	}
	c->cu_on = 1;
}

static size_t
len_fence(struct client *c, struct rd *r)
{
	unsigned n;

	rd_bytes(r, 7);		/* padding, flags */
	n = rd_u8(r);
	if (n > FENCE_DATA_MAX) {
		cl_fail(c, "ClientFence with a %u-byte payload (limit %d)", n,
		    FENCE_DATA_MAX);
		return 0;
	}
	return n;
}

/*
 * ClientFence (rfbproto 7.5.10).  Messages are handled in order, each
 * taking effect before the next is read and before any update is made,
 * so BlockBefore and BlockAfter hold when we answer at once.  SyncNext:
 * the answer follows the next message (h_message).  An answer to one of
 * our fences goes to the pacing.
 */
static void
msg_fence(struct client *c, struct rd *r)
{
	uint32_t flags;
	const uint8_t *data;
	size_t len;

	rd_bytes(r, 3);
	flags = rd_u32(r);
	len = rd_u8(r);
	if ((data = rd_bytes(r, len)) == NULL)
		return;
	if (!(flags & FENCE_REQUEST)) {
		pace_answer(c, flags, data, len, mono_ms());
		return;
	}
	/* rfbproto: Request cleared, and every flag we do not know */
	if (flags & FENCE_SYNC_NEXT) {
		c->sync.flags = flags & FENCE_KNOWN;
		c->sync.len = (uint8_t)len;
		memcpy(c->sync.data, data, len);
		c->sync_wait = 1;
		return;
	}
	wr_fence(c, flags & FENCE_KNOWN, data, len);
}

/*
 * ACL "view": the viewer watches and has no effect on anyone else - its
 * input, its clipboard, its resize requests and its wish for exclusive
 * access all go nowhere.  Logged once per session.
 */
static int
cl_input_dropped(struct client *c, const char *what)
{
	char u[4 * USER_MAX + 8];

	if (!c->view_only)
		return 0;
	if (!c->view_logged)
		logx(c->srv, LOG_AUTH | LOG_NOTICE, "view-only peer=%s user=%s: "
		    "dropping its %s and all further input", c->peer,
		    safe(c->user, u, sizeof u), what);
	c->view_logged = 1;
	return 1;
}

static void
msg_key(struct client *c, struct rd *r)
{
	int down = rd_u8(r);
	uint32_t keysym;

	rd_u16(r);
	keysym = rd_u32(r);
	if (cl_input_dropped(c, "key events"))
		return;
	c->sent_input = 1;
	fb_source.key(c->srv->fb, keysym, down);
}

static void
msg_pointer(struct client *c, struct rd *r)
{
	const struct server *s = c->srv;
	unsigned buttons = rd_u8(r);
	int x = rd_u16(r), y = rd_u16(r);

	if (x >= s->frame.width)
		x = s->frame.width - 1;
	if (y >= s->frame.height)
		y = s->frame.height - 1;
	if (cl_input_dropped(c, "pointer events"))
		return;
	c->sent_input = 1;
	fb_source.pointer(s->fb, x, y, buttons);
}

static size_t
len_cut_text(struct client *c, struct rd *r)
{
	uint32_t n;

	rd_bytes(r, 3);
	n = rd_u32(r);
	if (c->enc_ext_clip && n >= 0x80000000u) {	/* Extended Clipboard */
		n = 0u - n;
		if (n < 4 || n > EXT_CLIP_MAX) {
			cl_fail(c, "Extended Clipboard message of %lu bytes (4 to "
			    "%d)", (unsigned long)n, EXT_CLIP_MAX);
			return 0;
		}
		return n;
	}
	if (n > CUT_TEXT_MAX) {
		cl_fail(c, "ClientCutText of %lu bytes (limit %d)",
		    (unsigned long)n, CUT_TEXT_MAX);
		return 0;
	}
	return n;
}

static void
msg_cut_text(struct client *c, struct rd *r)
{
	uint32_t n;
	const uint8_t *text;

	rd_bytes(r, 3);
	n = rd_u32(r);
	if (c->enc_ext_clip && n >= 0x80000000u) {
		clip_message(c, r, 0u - n);
		return;
	}
	if ((text = rd_bytes(r, n)) != NULL &&
	    !cl_input_dropped(c, "clipboard"))
		fb_source.cut_text(c->srv->fb, (const char *)text, n);
}

/*
 * -- the clipboard: Latin-1 ServerCutText, or the Extended Clipboard --
 *
 * The source's clipboard is kept here as UTF-8 (s->clip).  A viewer
 * that announced the Extended Clipboard (rfbproto, 0xC0A1E5CE) gets our
 * caps on every SetEncodings, a notify when the clipboard changes, and
 * the text (CRLF, NUL-terminated, deflated once for all) when it asks;
 * its own notify is answered with a request, its provide inflated to
 * CLIP_MAX at most and given to the source as UTF-8.  Other viewers get
 * Latin-1, '?' for what it lacks, CUT_TEXT_MAX at most.  View users
 * neither send nor receive.
 */

/* The length of the UTF-8 character at s (n bytes there), 0 if it is
 * not one (overlong, surrogate, past U+10FFFF, cut short). */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	len = s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 :
	    s[0] < 0xf5 ? 4 : 0;
	if (len == 0 || len > n)
		return 0;
	cp = s[0] & (0x7fu >> len);
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/* In place, up to a NUL: CR LF as LF, what is not UTF-8 as '?'. */
static size_t
utf8_clean(char *s, size_t n)
{
	size_t i = 0, o = 0, k;

	while (i < n && s[i] != '\0') {
		if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') {
			i++;
			continue;
		}
		if ((k = utf8_len((unsigned char *)s + i, n - i)) == 0) {
			s[o++] = '?';
			i++;
			continue;
		}
		memmove(s + o, s + i, k);
		o += k;
		i += k;
	}
	return o;
}

/* Clean UTF-8 as Latin-1, '?' for the rest: out has room for n. */
static size_t
latin1_of_utf8(const char *in, size_t n, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i = 0, o = 0, k;

	while (i < n) {
		k = utf8_len(s + i, n - i);
		if (k == 2 && s[i] < 0xc4)	/* U+0080 to U+00FF */
			out[o++] = (char)((s[i] & 0x1f) << 6 | (s[i + 1] & 0x3f));
		else
			out[o++] = k == 1 ? (char)s[i] : '?';
		i += k ? k : 1;
	}
	return o;
}

static void
wr_ext_clip(struct client *c, uint32_t flags, const void *data, size_t n)
{
	wr_u8(c, SMSG_CUT_TEXT);
	wr_bytes(c, "\0\0\0", 3);
	wr_u32(c, 0u - (uint32_t)(4 + n));	/* negative: extended */
	wr_u32(c, flags);
	wr_bytes(c, data, n);
}

/* The clipboard as a provide payload: [size][text, CRLF, NUL], deflated. */
static int
clip_deflate(struct server *s)
{
	size_t n = 4 + 1, i, o = 4;
	uLongf zlen;
	uint8_t *raw;

	for (i = 0; i < s->clip_len; i++)
		n += s->clip[i] == '\n' ? 2 : 1;
	zlen = compressBound((uLong)n);
	if ((raw = malloc(n)) == NULL || (s->clip_z = malloc(zlen)) == NULL) {
		free(raw);
		return -1;
	}
	raw[0] = (uint8_t)((n - 4) >> 24);
	raw[1] = (uint8_t)((n - 4) >> 16);
	raw[2] = (uint8_t)((n - 4) >> 8);
	raw[3] = (uint8_t)(n - 4);
	for (i = 0; i < s->clip_len; i++) {
		if (s->clip[i] == '\n')
			raw[o++] = '\r';
		raw[o++] = (uint8_t)s->clip[i];
	}
	raw[o] = '\0';
	if (compress2(s->clip_z, &zlen, raw, (uLong)n, Z_DEFAULT_COMPRESSION) !=
	    Z_OK) {
		free(s->clip_z);
		s->clip_z = NULL;
		zlen = 0;
	}
	memset(raw, 0, n);
	free(raw);
	s->clip_zlen = zlen;
	return s->clip_z != NULL ? 0 : -1;
}

static void
clip_provide(struct client *c)
{
	struct server *s = c->srv;

	if (s->clip_z == NULL && clip_deflate(s) < 0) {
		logx(s, LOG_ERR, "out of memory for the clipboard");
		return;
	}
	wr_ext_clip(c, CLIP_PROVIDE | CLIP_TEXT, s->clip_z, s->clip_zlen);
}

/* Tell an Extended Clipboard viewer of new text, as its caps allow. */
static void
clip_offer(struct client *c)
{
	if (c->clip_flags & CLIP_NOTIFY)
		wr_ext_clip(c, CLIP_NOTIFY | CLIP_TEXT, NULL, 0);
	else if ((c->clip_flags & CLIP_PROVIDE) &&
	    c->srv->clip_len < c->clip_text_max)
		clip_provide(c);
}

/* The source's clipboard changed: keep it, and tell every viewer. */
static void
clip_set(struct server *s, const char *utf8, size_t len)
{
	struct client *c;
	char *t, *l = NULL;
	size_t ln = 0;

	if (len > CLIP_MAX)	/* cut at a character */
		for (len = CLIP_MAX; len > 0 &&
		    ((unsigned char)utf8[len] & 0xc0) == 0x80; len--)
			;
	if ((t = malloc(len + 1)) == NULL)
		return;
	memcpy(t, utf8, len);
	len = utf8_clean(t, len);
	t[len] = '\0';
	free(s->clip);
	free(s->clip_z);
	s->clip = t;
	s->clip_len = len;
	s->clip_z = NULL;
	s->clip_zlen = 0;
	for (c = s->clients; c != NULL; c = c->next) {
		if (c->state != ST_NORMAL || c->view_only || c->dead)
			continue;
		if (c->enc_ext_clip) {
			clip_offer(c);
			continue;
		}
		if (l == NULL) {	/* Latin-1, made once */
			if ((l = malloc(len + 1)) == NULL)
				return;
			ln = latin1_of_utf8(t, len, l);
			if (ln > CUT_TEXT_MAX)
				ln = CUT_TEXT_MAX;
		}
		wr_u8(c, SMSG_CUT_TEXT);
		wr_bytes(c, "\0\0\0", 3);
		wr_u32(c, (uint32_t)ln);
		wr_bytes(c, l, ln);
	}
	free(l);
}

/* A viewer's text for the source: UTF-8 if it takes it, else Latin-1. */
static void
clip_to_source(struct client *c, const char *text, size_t n)
{
	char *l;

	if (fb_source.cut_text_utf8 != NULL) {
		fb_source.cut_text_utf8(c->srv->fb, text, n);
		return;
	}
	if ((l = malloc(n + 1)) == NULL)
		return;
	n = latin1_of_utf8(text, n, l);
	fb_source.cut_text(c->srv->fb, l, n < CUT_TEXT_MAX ? n : CUT_TEXT_MAX);
	free(l);
}

/* Exactly n bytes of inflated output, or -1 (bad, or ended early). */
static int
clip_inflate(z_stream *zs, void *out, size_t n)
{
	int r;

	zs->next_out = out;
	zs->avail_out = (uInt)n;
	while (zs->avail_out > 0)
		if ((r = inflate(zs, Z_NO_FLUSH)) != Z_OK)
			break;
	return zs->avail_out == 0 ? 0 : -1;
}

/* A provide: its text (the first format, when there) for the source.
 * Inflation stops at the size the stream declares, CLIP_MAX at most:
 * a small message cannot make a big clipboard (zip bombs). */
static void
clip_provided(struct client *c, uint32_t flags, const uint8_t *z, size_t n)
{
	z_stream zs;
	uint8_t hdr[4];
	uint32_t size;
	char *text = NULL;

	if (!(flags & CLIP_TEXT))
		return;		/* only formats we never asked for */
	memset(&zs, 0, sizeof zs);
	if (inflateInit(&zs) != Z_OK) {
		cl_fail(c, "out of memory for zlib");
		return;
	}
	zs.next_in = (Bytef *)(uintptr_t)z;	/* zlib does not write it */
	zs.avail_in = (uInt)n;
	if (clip_inflate(&zs, hdr, 4) < 0) {
		cl_fail(c, "Extended Clipboard provide: bad zlib data");
	} else if ((size = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3]) > CLIP_MAX + 1) {
		logx(c->srv, LOG_NOTICE, "peer=%s clipboard of %lu bytes dropped "
		    "(limit %d)", c->peer, (unsigned long)size, CLIP_MAX);
	} else if ((text = malloc((size_t)size + 1)) == NULL) {
		cl_fail(c, "out of memory for the clipboard");
	} else if (clip_inflate(&zs, text, size) < 0) {
		cl_fail(c, "Extended Clipboard provide: text shorter than its "
		    "size, or bad zlib data");
	} else {
		clip_to_source(c, text, utf8_clean(text, size));
	}
	inflateEnd(&zs);
	free(text);
}

/* A ClientCutText with a negative length: len bytes of flags and data. */
static void
clip_message(struct client *c, struct rd *r, uint32_t len)
{
	uint32_t flags = rd_u32(r), act = flags & CLIP_ACTIONS;
	const uint8_t *data = rd_bytes(r, len - 4);

	if (data == NULL)
		return;		/* len_cut_text saw to it */
	if (act & CLIP_CAPS) {	/* what it takes; text's size comes first */
		c->clip_flags = flags;
		c->clip_text_max = (flags & CLIP_TEXT) && len >= 8 ?
		    (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 |
		    (uint32_t)data[2] << 8 | data[3] : 0;
		return;
	}
	if (act == 0 || (act & (act - 1)) != 0) {
		cl_fail(c, "Extended Clipboard message with actions 0x%08lx "
		    "(one, or caps)", (unsigned long)act);
		return;
	}
	if (cl_input_dropped(c, "clipboard"))
		return;
	switch (act) {
	case CLIP_REQUEST:
		if (flags & CLIP_TEXT)
			clip_provide(c);
		break;
	case CLIP_PEEK:
		wr_ext_clip(c, CLIP_NOTIFY | (c->srv->clip ? CLIP_TEXT : 0),
		    NULL, 0);
		break;
	case CLIP_NOTIFY:	/* it has text: ask for it */
		if ((flags & CLIP_TEXT) && (c->clip_flags & CLIP_REQUEST))
			wr_ext_clip(c, CLIP_REQUEST | CLIP_TEXT, NULL, 0);
		break;
	case CLIP_PROVIDE:
		clip_provided(c, flags, data, len - 4);
		break;
	}			/* actions 29-31: reserved, nothing to do */
}

/*
 * What SetEncodings asks the server to say at once: Extended Clipboard
 * caps (text; no size unasked, so viewers notify first, as rfbproto
 * recommends), and for QEMU extended key events the empty pseudo-
 * rectangle that invites them (as QEMU, unasked), only if the source
 * takes keycodes.
 */
static void
ext_announce(struct client *c)
{
	static const uint8_t no_size[4];

	if (c->enc_ext_clip) {
		if (c->clip_flags == 0) {	/* rfbproto's defaults */
			c->clip_flags = CLIP_TEXT | 6 | CLIP_REQUEST |
			    CLIP_NOTIFY | CLIP_PROVIDE;
			c->clip_text_max = 20 << 20;
		}
		wr_ext_clip(c, CLIP_CAPS | CLIP_REQUEST | CLIP_PEEK | CLIP_NOTIFY |
		    CLIP_PROVIDE | CLIP_TEXT, no_size, sizeof no_size);
	}
	if (c->enc_qemu_key && fb_source.keycode != NULL) {
		wr_u8(c, SMSG_UPDATE);
		wr_u8(c, 0);
		wr_u16(c, 1);
		wr_rect_header(c, 0, 0, 0, 0, ENC_QEMU_KEY);
	}
}

/*
 * -- QEMU extended key events (message 255, subtype 0) --
 *
 * The keycode is QEMU's "qnum": an XT set 1 scancode, 0xe0-prefixed ones
 * with the top bit set (rfbproto).  It reaches a source that takes
 * keycodes as a Linux evdev code: below 0x54 the two are the same by
 * design; the rest as keycodemapdb lists them (its AT set 1 column),
 * Print/SysRq as 0x54 or 0xb7.  No keycode, or no such key: the keysym.
 */
static const uint8_t qnum_evdev[256] = {
	[0x54] = 99, [0x55] = 186, [0x56] = 86, [0x57] = 87, [0x58] = 88,
	[0x59] = 117, [0x5a] = 190, [0x5b] = 101, [0x5c] = 95,
	[0x5d] = 183, [0x5e] = 184, [0x5f] = 185, [0x63] = 169,
	[0x64] = 134, [0x65] = 135, [0x66] = 141, [0x67] = 144,
	[0x68] = 145, [0x69] = 146, [0x6a] = 151, [0x6b] = 153,
	[0x6c] = 161, [0x6d] = 193, [0x6f] = 194, [0x70] = 93, [0x73] = 89,
	[0x74] = 191, [0x75] = 177, [0x76] = 85, [0x77] = 91, [0x78] = 90,
	[0x79] = 92, [0x7b] = 94, [0x7d] = 124, [0x7e] = 121, [0x81] = 171,
	[0x82] = 150, [0x83] = 187, [0x84] = 189, [0x85] = 129,
	[0x86] = 130, [0x87] = 131, [0x88] = 176, [0x89] = 181,
	[0x8a] = 182, [0x8b] = 120, [0x8c] = 132, [0x8e] = 233,
	[0x8f] = 178, [0x90] = 165, [0x92] = 152, [0x93] = 147,
	[0x94] = 222, [0x97] = 149, [0x98] = 168, [0x99] = 163,
	[0x9c] = 96, [0x9d] = 97, [0x9e] = 139, [0x9f] = 148, [0xa0] = 113,
	[0xa1] = 140, [0xa2] = 164, [0xa3] = 160, [0xa4] = 166,
	[0xa5] = 205, [0xa6] = 154, [0xa8] = 200, [0xa9] = 201,
	[0xab] = 202, [0xac] = 203, [0xad] = 204, [0xae] = 114,
	[0xaf] = 206, [0xb0] = 115, [0xb1] = 167, [0xb2] = 172,
	[0xb3] = 207, [0xb4] = 208, [0xb5] = 98, [0xb6] = 209, [0xb7] = 99,
	[0xb8] = 100, [0xb9] = 210, [0xba] = 211, [0xbb] = 212,
	[0xbc] = 137, [0xbd] = 213, [0xbe] = 214, [0xbf] = 215,
	[0xc0] = 216, [0xc1] = 136, [0xc2] = 218, [0xc3] = 219,
	[0xc4] = 220, [0xc5] = 221, [0xc6] = 119, [0xc7] = 102,
	[0xc8] = 103, [0xc9] = 104, [0xca] = 223, [0xcb] = 105,
	[0xcc] = 224, [0xcd] = 106, [0xce] = 118, [0xcf] = 107,
	[0xd0] = 108, [0xd1] = 109, [0xd2] = 110, [0xd3] = 111,
	[0xd4] = 225, [0xd5] = 234, [0xd6] = 227, [0xd7] = 228,
	[0xd8] = 229, [0xd9] = 230, [0xda] = 231, [0xdb] = 125,
	[0xdc] = 126, [0xdd] = 127, [0xde] = 116, [0xdf] = 142,
	[0xe3] = 143, [0xe4] = 232, [0xe5] = 217, [0xe6] = 156,
	[0xe7] = 173, [0xe8] = 128, [0xe9] = 159, [0xea] = 158,
	[0xeb] = 157, [0xec] = 155, [0xed] = 226, [0xef] = 112,
	[0xf0] = 235, [0xf1] = 236, [0xf2] = 237, [0xf3] = 238,
	[0xf4] = 239, [0xf5] = 138, [0xf6] = 179, [0xf7] = 188,
	[0xf8] = 133, [0xf9] = 192, [0xfb] = 180, [0xfd] = 162,
};

static unsigned
qnum_to_evdev(uint32_t q)
{
	if (q >= 1 && q <= 0x53)
		return q;
	return q < 256 ? qnum_evdev[q] : 0;
}

static size_t
len_qemu(struct client *c, struct rd *r)
{
	unsigned sub = rd_u8(r);

	if (!c->enc_qemu_key || sub != 0) {
		cl_fail(c, !c->enc_qemu_key ? "QEMU message without its "
		    "pseudo-encoding" : "QEMU submessage %u (only 0, extended "
		    "key events, is announced)", sub);
		return 0;
	}
	return 10;
}

static void
msg_qemu(struct client *c, struct rd *r)
{
	int down;
	uint32_t keysym, code;
	unsigned evdev;

	rd_u8(r);
	down = rd_u16(r) != 0;
	keysym = rd_u32(r);
	code = rd_u32(r);
	if (r->err || cl_input_dropped(c, "key events"))
		return;
	c->sent_input = 1;
	if ((evdev = qnum_to_evdev(code)) != 0 && fb_source.keycode != NULL)
		fb_source.keycode(c->srv->fb, evdev, keysym, down);
	else if (keysym != 0)
		fb_source.key(c->srv->fb, keysym, down);
}

static size_t
len_set_desktop_size(struct client *c, struct rd *r)
{
	unsigned screens;

	rd_bytes(r, 5);		/* padding, width, height */
	screens = rd_u8(r);
	if (screens > SCREENS_MAX) {
		cl_fail(c, "SetDesktopSize with %u screens (limit %d)", screens,
		    SCREENS_MAX);
		return 0;
	}
	return (size_t)screens * 16;
}

static void
msg_set_desktop_size(struct client *c, struct rd *r)
{
	struct server *s = c->srv;
	int w, h, nscreens, ok;

	rd_u8(r);
	w = rd_u16(r);
	h = rd_u16(r);
	nscreens = rd_u8(r);
	if (!c->enc_ext_desktop_size) {
		cl_fail(c, "SetDesktopSize without ExtendedDesktopSize");
		return;
	}
	if (cl_input_dropped(c, "resize request")) {
		/* RFB: reason 1 (this client), status 1 (prohibited) */
		c->size_changed = 1;
		c->size_reason = 1;
		c->size_status = 1;
		return;
	}
	if (w == s->frame.width && h == s->frame.height)
		ok = 0;
	else if (nscreens < 1 || fb_source.resize == NULL)
		ok = -1;
	else
		ok = fb_source.resize(s->fb, w, h);
	logx(s, LOG_INFO, "peer=%s asked for %dx%d: %s", c->peer, w, h,
	    ok == 0 ? "done" : "refused");
	/* RFB: the requester hears reason 1 with the status */
	c->size_changed = 1;
	c->size_reason = 1;
	c->size_status = ok == 0 ? 0 : (nscreens < 1 ? 3 : 1);
}

struct msgtype {
	const char *name;
	size_t len;		/* fixed part, type byte included */
	/* the variable part's length, read from the fixed part */
	size_t (*extra)(struct client *, struct rd *);
	void (*fn)(struct client *, struct rd *);
};

static const struct msgtype msgtab[256] = {
	[MSG_SET_PIXEL_FORMAT] = { "SetPixelFormat", 20, NULL,
	    msg_set_pixel_format },
	[MSG_SET_ENCODINGS] = { "SetEncodings", 4, len_set_encodings,
	    msg_set_encodings },
	[MSG_UPDATE_REQUEST] = { "FramebufferUpdateRequest", 10, NULL,
	    msg_update_request },
	[MSG_KEY] = { "KeyEvent", 8, NULL, msg_key },
	[MSG_POINTER] = { "PointerEvent", 6, NULL, msg_pointer },
	[MSG_CUT_TEXT] = { "ClientCutText", 8, len_cut_text, msg_cut_text },
	[MSG_ENABLE_CU] = { "EnableContinuousUpdates", 10, NULL,
	    msg_enable_cu },
	[MSG_FENCE] = { "ClientFence", 9, len_fence, msg_fence },
	[MSG_SET_DESKTOP_SIZE] = { "SetDesktopSize", 8, len_set_desktop_size,
	    msg_set_desktop_size },
	[MSG_QEMU] = { "QEMU", 2, len_qemu, msg_qemu },
};

static size_t
h_message(struct client *c, uint8_t *p, size_t n)
{
	struct rd r = rd_of(p, n);
	unsigned type = rd_u8(&r);
	const struct msgtype *m = &msgtab[type];
	struct fence held;
	size_t len;
	int sync;

	if (m->name == NULL) {
		cl_fail(c, "unknown client message type %u", type);
		return n;
	}
	len = m->len;
	if (n < len) {
		cl_expect(c, h_message, len);
		return 0;
	}
	if (m->extra != NULL) {
		struct rd fixed = rd_of(p + 1, m->len - 1);

		len += m->extra(c, &fixed);
		if (c->dead)
			return n;
		if (n < len) {
			cl_expect(c, h_message, len);
			return 0;
		}
	}
	r = rd_of(p + 1, len - 1);
	if ((sync = c->sync_wait) != 0) {	/* SyncNext: this message */
		held = c->sync;
		c->sync_wait = 0;
	}
	m->fn(c, &r);
	if (r.err && !c->dead)
		cl_fail(c, "%s shorter than its fields", m->name);
	if (sync && !c->dead)	/* ... has taken effect: the answer */
		wr_fence(c, held.flags, held.data, held.len);
	cl_expect(c, h_message, 1);
	return len;
}

/* ---------------------------------------------------------------------
 * Client I/O.
 * ------------------------------------------------------------------- */

static void
cl_process(struct client *c)
{
	while (!c->dead && c->state != ST_CLOSING && c->state != ST_TLS &&
	    c->state != ST_HTTP && !cl_held(c)) {
		size_t avail = buf_used(&c->in), used, need = c->need;
		handler_fn fn = c->handler;

		if (avail < c->need)
			break;
		used = fn(c, c->in.data + c->in.off, avail);
		/* 0: "call me again once c->need bytes are here", which may
		 * be now; asking for the same again would never end */
		if (used == 0 && fn == c->handler && need == c->need &&
		    !c->dead && !cl_held(c)) {
			cl_fail(c, "internal: %s handler stalled",
			    state_name[c->state]);
			break;
		}
		c->in.off += used;
	}
	if (c->in.off == c->in.len)
		c->in.off = c->in.len = 0;
}

/* One read through TLS or the socket: >0 bytes, 0 end, -1 again, -2 failed. */
static ssize_t
io_read(struct client *c, void *buf, size_t n)
{
	ssize_t r;

	if (!c->tls_up) {
		r = read(c->fd, buf, n);
		if (r >= 0)
			return r;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return -1;
		cl_fail(c, "read: %s", strerror(errno));
		return -2;
	}
	r = gnutls_record_recv(c->tls, buf, n);
	if (r >= 0)
		return r;
	if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED)
		return -1;
	if (r == GNUTLS_E_PREMATURE_TERMINATION)
		return 0;
	cl_fail(c, "TLS: %s", gnutls_strerror((int)r));
	return -2;
}

/* Room for one read: a chunk, or what the handler waits for. */
static size_t
in_room(const struct client *c)
{
	size_t room = IN_CHUNK;

	if (c->need > buf_used(&c->in) && c->need - buf_used(&c->in) > room)
		room = c->need - buf_used(&c->in);
	return room;
}

static ssize_t ws_read(struct client *);

static void
cl_read(struct client *c)
{
	size_t room;
	ssize_t r;

	if (c->state == ST_CLOSING) {	/* drain and ignore */
		uint8_t junk[512];

		if (read(c->fd, junk, sizeof junk) == 0)
			c->dead = 1;	/* c->why says why */
		return;
	}
	if (c->state == ST_TLS) {
		if (buf_used(&c->out) == 0)	/* our "accepted" went out */
			tls_handshake(c);
		return;
	}
	if (cl_held(c))		/* not its turn yet */
		return;
	do {
		if (c->ws != NULL) {	/* decodes into c->in itself */
			r = ws_read(c);
		} else {
			room = in_room(c);
			if (buf_reserve(&c->in, room) < 0) {
				cl_fail(c, "out of memory for input");
				return;
			}
			if ((r = io_read(c, c->in.data + c->in.len, room)) > 0)
				c->in.len += (size_t)r;
		}
		if (r == 0 && c->tls_up && c->tls_rx == 0 && c->ws != NULL)
			cl_fail(c, "closed after TLS without a request (a "
			    "browser's spare connection, or it does not trust "
			    "the certificate)");	/* wss: no type yet */
		else if (r == 0 && c->tls_up && c->tls_rx == 0 &&
		    c->sec->tls == TLS_X509)
			cl_fail(c, "viewer closed after TLS (does it trust the "
			    "certificate?)");
		else if (r == 0)
			cl_fail(c, "viewer closed the connection in state %s",
			    state_name[c->state]);
		if (r <= 0)
			return;
		c->tls_rx += c->tls_up ? (size_t)r : 0;
		cl_process(c);
		/* records GnuTLS already holds wake no poll(): drain them */
	} while (c->tls_up && !c->dead && c->state != ST_CLOSING &&
	    gnutls_record_check_pending(c->tls) > 0);
}

/* One write through TLS (a record at most) or the socket: bytes
 * written, or -1 (again later, or failed: then c is dead). */
static ssize_t
io_write(struct client *c, const uint8_t *p, size_t n)
{
	ssize_t w;

	if (c->tls_up) {
		/* after E_AGAIN GnuTLS resumes its own copy */
		w = c->tls_wpending ? gnutls_record_send(c->tls, NULL, 0) :
		    gnutls_record_send(c->tls, p, n < TLS_RECORD_MAX ? n :
		    TLS_RECORD_MAX);
		if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
			c->tls_wpending = 1;
			return -1;
		}
		c->tls_wpending = 0;
		if (w < 0) {
			cl_fail(c, "TLS: %s", gnutls_strerror((int)w));
			return -1;
		}
		return w;
	}
	w = write(c->wfd, p, n);
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		cl_fail(c, "write: %s", strerror(errno));
	return w < 0 ? -1 : w;
}

static ssize_t ws_write(struct client *);
static int ws_due(const struct client *);
static void ws_free(struct client *);

/* A gated client's time has come: what it waited for, then its input. */
static void
cl_resume(struct client *c)
{
	c->gate_until = 0;
	if (c->gate_start) {
		c->gate_start = 0;
		auth_begin(c);
	}
	if (c->gate_until || c->dead || c->state == ST_CLOSING)
		return;
	cl_process(c);		/* what it sent while it waited */
	if (!c->gate_until && !c->dead && c->state != ST_CLOSING)
		cl_read(c);
}

static void
cl_flush(struct client *c)
{
	ssize_t w;

	if (c->state == ST_NORMAL)
		link_sample(c, mono_ms());
	while (!c->dead && (buf_used(&c->out) > 0 || ws_due(c))) {
		/* wss: frames of c->out, and control frames, in between */
		w = c->ws != NULL ? ws_write(c) : io_write(c, c->out.data +
		    c->out.off, buf_used(&c->out));
		if (w < 0) {
			c->lk_left = buf_used(&c->out);
			return;
		}
		c->out.off += (size_t)w;
		c->wrote += (size_t)w;
		c->last_out = mono_ms();
		if (c->state == ST_NORMAL)
			link_sent(c, c->last_out);
	}
	c->lk_left = buf_used(&c->out);
	if (buf_used(&c->out) == 0 && !ws_due(c)) {
		c->out.off = c->out.len = 0;
		if (c->out.cap > OUT_LOW && !cl_waiting(c)) {
			/* an idle viewer keeps no frame-sized buffer */
			memset(c->out.data, 0, c->out.cap);
			buf_free(&c->out);
		}
		if (c->state == ST_CLOSING)
			c->dead = 1;	/* c->why says why */
	}
}

static void
cl_free(struct client *c)
{
	struct server *s = c->srv;
	double secs = (mono_ms() - c->t_start) / 1000.0;
	char u[4 * USER_MAX + 8];

	logx(s, LOG_AUTH | LOG_INFO, "close peer=%s user=%s secs=%.1f reason=%s",
	    c->peer, safe(c->user, u, sizeof u), secs, c->why);
	pace_log(c);
	/* only a viewer that pressed something may release (a watcher
	 * leaving must not let go of another viewer's keys) */
	if (c->state == ST_NORMAL && c->sent_input)
		fb_source.release(s->fb);
#ifdef HAVE_PAM
	pam_forget(c);
#endif
	if (c->sasl != NULL)
		gsasl_finish(c->sasl);
	if (c->tls != NULL) {
		if (c->tls_up)	/* best effort, never blocks */
			gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		gnutls_deinit(c->tls);
	}
	ws_free(c);
	close(c->fd);
	if (c->wfd != c->fd)
		close(c->wfd);
	buf_free(&c->in);
	if (c->out.data != NULL)
		memset(c->out.data, 0, c->out.cap);
	buf_free(&c->out);
	free(c->dirty);
	enc_free(c);
	free(c);
}

/* An address as ACL "from" rules see it: IPv4-mapped IPv6 as IPv4. */
static int
addr_text(const struct sockaddr_storage *ss, char *host, size_t len)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)len);
		return ntohs(in->sin_port);
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			inet_ntop(AF_INET, in6->sin6_addr.s6_addr + 12, host,
			    (socklen_t)len);
		else
			inet_ntop(AF_INET6, &in6->sin6_addr, host, (socklen_t)len);
		return ntohs(in6->sin6_port);
	}
	if (ss->ss_family == AF_UNIX) {
		snprintf(host, len, "unix");
		return -1;
	}
	/* a peer we could not name is remote: never "unix" (fail closed) */
	snprintf(host, len, "unknown");
	return -2;
}

static void
peer_name(struct client *c, const struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = addr_text(ss, host, sizeof host);

	c->is_unix = port == -1;
	snprintf(c->addr, sizeof c->addr, "%s", host);
	if (port < 0)
		snprintf(c->peer, sizeof c->peer, "%s", host);
	else
		snprintf(c->peer, sizeof c->peer, ss->ss_family == AF_INET6 &&
		    strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	addr_key(c->addr, c->akey, sizeof c->akey);
}

static int
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* The RFB side begins: our ProtocolVersion, then the viewer's. */
static void
rfb_start(struct client *c)
{
	c->state = ST_VERSION;
	cl_expect(c, h_version, 12);
	/* the greeting goes at once: gtk-vnc waits 2 s for it otherwise */
	wr_bytes(c, RFB_GREETING, 12);
	cl_flush(c);
}

/* A connection, logged and counted; the caller starts its protocol. */
static struct client *
cl_alloc(struct server *s, int fd, int wfd, const struct sockaddr_storage *ss)
{
	struct client *c;
	int one = 1;

	if (set_nonblock(fd) < 0 || set_nonblock(wfd) < 0 ||
	    (c = calloc(1, sizeof *c)) == NULL) {
		logx(s, LOG_ERR, "cannot take a connection: %s",
		    strerror(errno));
		close(fd);
		if (wfd != fd)
			close(wfd);
		return NULL;
	}
	c->srv = s;
	c->fd = fd;
	c->wfd = wfd;
	c->pfd = c->pfdw = -1;
	c->t_start = c->last_out = mono_ms();
	c->deadline = c->t_start + (long long)s->handshake_s * 1000;
	peer_name(c, ss);
	if (!c->is_unix)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s->served++;
	c->next = s->clients;
	s->clients = c;
	s->nclients++;
	logx(s, LOG_INFO, "connect peer=%s", c->peer);
	return c;
}

static struct client *
cl_new(struct server *s, int fd, int wfd, const struct sockaddr_storage *ss)
{
	struct client *c = cl_alloc(s, fd, wfd, ss);

	if (c != NULL)
		rfb_start(c);
	return c;
}

/* ---------------------------------------------------------------------
 * WebSocket (wss://, -W): RFC 6455 between TLS and the RFB client.
 *
 * A -W connection is TLS first (the server certificate; the browser's
 * TLS is the channel, so no VeNCrypt TLS inside), then HTTP in ST_HTTP:
 * a GET that asks to upgrade to a WebSocket becomes an ordinary RFB
 * client (rfb_start(), offered the wss-* security types), a plain GET is
 * a file of -F (the connection kept for the next), anything else an
 * error page and the end.  After the upgrade the RFB code never knows:
 * ws_read() takes TLS plaintext into ws->raw and decodes frames, the
 * unmasked payload going to c->in; ws_write() sends c->out as binary
 * frames, one TLS record at a time, and c->out.off moves only once a
 * frame is out, so backpressure, the stall deadline and the output bound
 * see what they always saw.  A ping gets a pong (the latest ping's only,
 * RFC 6455 5.5.3), a close is echoed, and an RFB failure reason is
 * followed by a close frame.
 * ------------------------------------------------------------------- */

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"	/* RFC 6455 1.3 */

struct ws {
	struct buf raw;		/* TLS plaintext not yet decoded */
	unsigned open : 1;	/* upgraded: frames both ways */
	unsigned in_frame : 1;	/* a header was read, its payload follows */
	unsigned in_msg : 1;	/* a fragmented binary message goes on */
	unsigned close_sent : 1;
	unsigned stage_plain : 1;	/* the staged record is HTTP */
	unsigned nreq;		/* HTTP requests on this connection */
	/* the frame being read */
	unsigned op, fin, mpos;
	uint64_t left;		/* its payload bytes still to come */
	uint8_t mask[4];
	uint8_t ctl[WS_CTL_MAX];	/* a control frame's payload */
	size_t ctl_len;
	/* output */
	size_t plain;		/* bytes at the head of c->out to send as
				   they are (HTTP), not framed */
	uint8_t pong[WS_CTL_MAX];
	int pong_len;		/* -1: no pong due */
	unsigned close_code;	/* a close frame due with this code */
	uint8_t stage[TLS_RECORD_MAX];	/* the record being sent */
	size_t stage_len, stage_off;
	size_t staged_out;	/* bytes of c->out in it */
};

/* What one request says that matters here (pointers into the head). */
struct http_req {
	char *method, *target, *version;
	char *host, *upgrade, *key, *wsver, *origin;
	int conn_upgrade;	/* Connection lists "upgrade" */
	int protocols;		/* Sec-WebSocket-Protocol given */
	int binary;		/* ... and it lists "binary" (noVNC < 1.3) */
	int body;		/* Content-Length > 0 or Transfer-Encoding */
};

static const struct {
	const char *ext, *type;
} mime_types[] = {	/* what noVNC's pages are made of, nothing else */
	{ "html", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "ico", "image/x-icon" },
	{ "json", "application/json" },
	{ "woff", "font/woff" },
	{ "woff2", "font/woff2" },
	{ "ttf", "font/ttf" },
	{ "oga", "audio/ogg" },
	{ "mp3", "audio/mpeg" },
};

static void
ws_free(struct client *c)
{
	if (c->ws == NULL)
		return;
	buf_free(&c->ws->raw);
	free(c->ws);
	c->ws = NULL;
}

/* The layer, before its first byte (the caller sets the state). */
static int
ws_attach(struct client *c)
{
	if ((c->ws = calloc(1, sizeof *c->ws)) == NULL) {
		cl_fail(c, "out of memory for the WebSocket");
		return -1;
	}
	c->ws->pong_len = -1;
	cl_expect(c, NULL, 1);	/* nothing for RFB handlers until upgraded */
	return 0;
}

/* A -W connection: TLS with the server certificate, no client one. */
static void
ws_accept(struct server *s, int fd, const struct sockaddr_storage *ss)
{
	/* pages are fetched with h2 if offered; we speak HTTP/1.1 only */
	static const gnutls_datum_t http11 = { (unsigned char *)"http/1.1", 8 };
	struct client *c = cl_alloc(s, fd, fd, ss);

	if (c == NULL || ws_attach(c) < 0)
		return;
	if (gnutls_init(&c->tls, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0) {
		c->tls = NULL;
		cl_fail(c, "cannot start TLS");
		return;
	}
	gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, s->x509);
	gnutls_priority_set(c->tls, s->prio_x509);
	gnutls_alpn_set_protocols(c->tls, &http11, 1, 0);
	/* -T: a browser too shows a certificate (its subject for dn: rules) */
	if (s->verify_clients)
		gnutls_certificate_server_set_request(c->tls,
		    GNUTLS_CERT_REQUIRE);
	gnutls_transport_set_int2(c->tls, c->fd, c->wfd);
	c->state = ST_TLS;
}

static void
ws_tls_done(struct client *c)
{
	char *desc, dn[4 * DN_MAX + 8];

	if (c->srv->verify_clients && tls_verify_client(c) < 0)
		return;
	desc = gnutls_session_get_desc(c->tls);
	logx(c->srv, LOG_INFO, "tls peer=%s wss %s ssf=%d dn=%s", c->peer,
	    desc ? desc : "?", c->ssf, safe(c->dn, dn, sizeof dn));
	gnutls_free(desc);
	c->state = ST_HTTP;
	cl_read(c);	/* the request may already sit in GnuTLS's buffer */
}

/* -- HTTP: one request head at a time -- */

static const char *
http_status_text(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	case 505: return "HTTP Version Not Supported";
	default: return "Bad Request";
	}
}

/* A response head; the body (blen bytes) is the caller's to queue. */
static void
http_head(struct client *c, int status, const char *extra, const char *type,
    size_t blen, int keep)
{
	char h[768];
	int n;

	n = snprintf(h, sizeof h, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n"
	    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
	    "Referrer-Policy: no-referrer\r\n"
	    "Content-Security-Policy: frame-ancestors 'none'\r\n%s%s\r\n",
	    status, http_status_text(status), type, blen, extra,
	    keep ? "" : "Connection: close\r\n");
	wr_bytes(c, h, n > 0 && (size_t)n < sizeof h ? (size_t)n : 0);
}

/* An error page; all but 404 end the connection. */
static void
http_error(struct client *c, int status, const char *why)
{
	char body[256], reason[300];
	int n, keep = status == 404 && c->ws->nreq < WS_REQUESTS_MAX;

	n = snprintf(body, sizeof body, "vncsasl: %d %s: %s\n", status,
	    http_status_text(status), why);
	if (n < 0 || (size_t)n >= sizeof body)
		n = 0;
	logx(c->srv, status == 404 ? LOG_DEBUG : LOG_NOTICE,
	    "http peer=%s %d: %s", c->peer, status, why);
	http_head(c, status, status == 405 ? "Allow: GET\r\n" : status == 426 ?
	    "Sec-WebSocket-Version: 13\r\n" : "", "text/plain; charset=utf-8",
	    (size_t)n, keep);
	wr_bytes(c, body, (size_t)n);
	c->ws->plain = buf_used(&c->out);
	if (!keep) {
		snprintf(reason, sizeof reason, "http %d: %s", status, why);
		cl_linger(c, reason);
	}
	cl_flush(c);
}

static int
http_tchar(int ch)	/* RFC 9110 5.6.2 token characters */
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
	    (ch >= 'A' && ch <= 'Z') ||
	    (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Is tok an item of the comma list (any case, blanks around)? */
static int
http_list_has(const char *list, const char *tok)
{
	const char *item;
	size_t len;

	while (list_next(&list, &item, &len)) {
		while (len > 0 && (*item == ' ' || *item == '\t')) {
			item++;
			len--;
		}
		while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
			len--;
		if (len == strlen(tok) && strncasecmp(item, tok, len) == 0)
			return 1;
	}
	return 0;
}

/* A header that may come only once. */
static int
http_once(char **slot, char *value)
{
	if (*slot != NULL)
		return -1;
	*slot = value;
	return 0;
}

static int
http_header(struct http_req *q, char *line, const char **why)
{
	char *colon = strchr(line, ':'), *name = line, *v, *e;
	int dup = 0;

	/* no blank before the colon, none starting the line (obs-fold) */
	for (v = line; colon != NULL && v < colon && http_tchar(*v); v++)
		;
	if (colon == NULL || colon == line || v != colon) {
		*why = "malformed header line";
		return 400;
	}
	*colon = '\0';
	for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
		;
	for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
		;
	*e = '\0';
	for (e = v; *e != '\0'; e++)
		if (((unsigned char)*e < 0x20 && *e != '\t') || *e == 0x7f) {
			*why = "control character in a header";
			return 400;
		}
	if (strcasecmp(name, "host") == 0)
		dup = http_once(&q->host, v);
	else if (strcasecmp(name, "upgrade") == 0)
		dup = http_once(&q->upgrade, v);
	else if (strcasecmp(name, "sec-websocket-key") == 0)
		dup = http_once(&q->key, v);
	else if (strcasecmp(name, "sec-websocket-version") == 0)
		dup = http_once(&q->wsver, v);
	else if (strcasecmp(name, "origin") == 0)
		dup = http_once(&q->origin, v);
	else if (strcasecmp(name, "connection") == 0)
		q->conn_upgrade |= http_list_has(v, "upgrade");
	else if (strcasecmp(name, "sec-websocket-protocol") == 0) {
		q->protocols = 1;
		q->binary |= http_list_has(v, "binary");
	} else if (strcasecmp(name, "content-length") == 0)
		q->body |= strcmp(v, "0") != 0;
	else if (strcasecmp(name, "transfer-encoding") == 0)
		q->body = 1;
	if (dup) {
		*why = "a header that may come once came twice";
		return 400;
	}
	return 0;
}

/*
 * The head (request line, headers, the blank line; len bytes, CRLF
 * lines) into q, in place: 0, or the status to refuse it with.
 */
static int
http_parse(char *p, size_t len, struct http_req *q, const char **why)
{
	char *line, *next, *sp1, *sp2, *t;
	size_t i;
	int nh = 0, st;

	memset(q, 0, sizeof *q);
	*why = "malformed request line";
	for (i = 0; i < len; i++) {
		/* a lone CR or LF, or a NUL, is how requests are smuggled */
		if (p[i] == '\0' || (p[i] == '\r' && (i + 1 == len ||
		    p[i + 1] != '\n')) || (p[i] == '\n' && (i == 0 ||
		    p[i - 1] != '\r'))) {
			*why = "NUL, or a CR or LF alone, in the request";
			return 400;
		}
	}
	for (i = 0; i < len; i++)
		if (p[i] == '\r')
			p[i] = '\0';	/* each line a string */
	line = p;
	next = line + strlen(line) + 2;
	sp1 = strchr(line, ' ');
	sp2 = sp1 != NULL ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || strchr(sp2 + 1, ' ') != NULL ||
	    sp1 == line || sp1 - line > 16)
		return 400;
	*sp1 = *sp2 = '\0';
	q->method = line;
	q->target = sp1 + 1;
	q->version = sp2 + 1;
	for (t = q->method; *t != '\0'; t++)
		if (!http_tchar(*t))
			return 400;
	if (strcmp(q->version, "HTTP/1.1") != 0) {
		*why = "HTTP/1.1 only";
		return strncmp(q->version, "HTTP/", 5) == 0 ? 505 : 400;
	}
	if (q->target[0] != '/' || strlen(q->target) > WS_TARGET_MAX) {
		*why = "request target not a path, or over " XSTR(WS_TARGET_MAX)
		    " bytes";
		return 400;
	}
	for (t = q->target; *t != '\0'; t++)
		if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
			return 400;
	for (line = next; *line != '\0'; line = next) {
		next = line + strlen(line) + 2;	/* before it is cut up */
		if (++nh > WS_HEADERS_MAX) {
			*why = "more than " XSTR(WS_HEADERS_MAX) " header lines";
			return 431;
		}
		if ((st = http_header(q, line, why)) != 0)
			return st;
	}
	return 0;
}

/* May a page from q's Origin open a WebSocket here (-O)? */
static int
origin_allowed(const struct server *s, const struct http_req *q)
{
	const char *list = s->origins, *item;
	size_t len;

	/* no Origin: not a browser (every browser sends one), so no page of
	 * someone else's is using a visitor's network position */
	if (q->origin == NULL)
		return 1;
	if (list == NULL)	/* default: the page's own origin only */
		return strncasecmp(q->origin, "https://", 8) == 0 &&
		    strcasecmp(q->origin + 8, q->host) == 0;
	while (list_next(&list, &item, &len))
		if ((len == 1 && *item == '*') || (len == strlen(q->origin) &&
		    strncasecmp(item, q->origin, len) == 0))
			return 1;
	return 0;
}

/* RFC 6455 4.2: answer the handshake, then RFB begins inside. */
static void
ws_upgrade(struct client *c, const struct http_req *q)
{
	struct sha1_ctx sha;
	uint8_t key[32], digest[SHA1_DIGEST_SIZE];
	char accept[64], head[256], o[4 * 256 + 8], t[4 * 64 + 8];
	size_t klen;
	int n;

	if (!http_list_has(q->upgrade, "websocket") || !q->conn_upgrade) {
		http_error(c, 400, "an Upgrade other than to websocket");
		return;
	}
	if (q->wsver == NULL || strcmp(q->wsver, "13") != 0) {
		http_error(c, 426, "WebSocket version other than 13");
		return;
	}
	if (q->key == NULL || strlen(q->key) != WS_KEY_LEN ||
	    b64_decode(q->key, key, sizeof key, &klen) < 0 || klen != 16) {
		http_error(c, 400, "bad Sec-WebSocket-Key");
		return;
	}
	if (q->protocols && !q->binary) {
		http_error(c, 400, "subprotocols asked for, none of them binary");
		return;
	}
	if (strlen(q->origin ? q->origin : "") > 256 ||
	    !origin_allowed(c->srv, q)) {
		logx(c->srv, LOG_WARNING, "wss peer=%s refused: origin %s is not "
		    "allowed (-O)", c->peer, safe(q->origin, o, sizeof o));
		http_error(c, 403, "this page's origin may not connect (-O)");
		return;
	}
	sha1_init(&sha);
	sha1_update(&sha, WS_KEY_LEN, (const uint8_t *)q->key);
	sha1_update(&sha, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
	sha1_digest(&sha, sizeof digest, digest);
	if (b64_encode(digest, sizeof digest, accept, sizeof accept) < 0) {
		cl_fail(c, "out of memory");
		return;
	}
	n = snprintf(head, sizeof head, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept, q->binary ?
	    "Sec-WebSocket-Protocol: binary\r\n" : "");
	wr_bytes(c, head, (size_t)n);
	c->ws->plain = buf_used(&c->out);
	c->ws->open = 1;
	logx(c->srv, LOG_INFO, "wss peer=%s websocket path=%s origin=%s",
	    c->peer, safe(q->target, t, sizeof t), safe(q->origin, o, sizeof o));
	rfb_start(c);
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * The target as a path relative to -F: percent-decoded, the query
 * dropped, a directory's "index.html"; every component a plain name
 * (no "", ".", ".." or other dot names: nothing leaves the directory,
 * decoded or not).  0, or the status to refuse it with.
 */
static int
http_path(const char *target, char *out, size_t outlen, const char **why)
{
	const char *p, *comp, *slash;
	size_t o = 0, clen;

	for (p = target + 1; *p != '\0' && *p != '?'; p++) {
		int ch = (unsigned char)*p, hi, lo;

		if (ch == '%') {
			if ((hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0) {
				*why = "bad percent-encoding";
				return 400;
			}
			ch = hi << 4 | lo;
			p += 2;
		}
		if (ch < 0x20 || ch == 0x7f || ch == '\\') {
			*why = "control character or backslash in the path";
			return 400;
		}
		if (o + 1 >= outlen) {
			*why = "path too long";
			return 400;
		}
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	if (o == 0 || out[o - 1] == '/') {
		if (o + sizeof "index.html" > outlen) {
			*why = "path too long";
			return 400;
		}
		memcpy(out + o, "index.html", sizeof "index.html");
	}
	for (comp = out;; comp = slash + 1) {
		slash = strchr(comp, '/');
		clen = slash != NULL ? (size_t)(slash - comp) : strlen(comp);
		if (clen == 0 || comp[0] == '.' || clen > 255) {
			*why = "a path component empty, too long, or starting "
			    "with '.'";
			return 400;
		}
		if (slash == NULL)
			return 0;
	}
}

/* Open a checked relative path under root, one component at a time, no
 * symbolic link followed (a link could lead anywhere). */
static int
www_open(int root, char *path)
{
	char *comp = path, *slash;
	int dir = root, fd;

	while ((slash = strchr(comp, '/')) != NULL) {
		*slash = '\0';
		fd = openat(dir, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		*slash = '/';
		if (dir != root)
			close(dir);
		if (fd < 0)
			return -1;
		dir = fd;
		comp = slash + 1;
	}
	fd = openat(dir, comp, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
	    O_CLOEXEC);
	if (dir != root)
		close(dir);
	return fd;
}

static const char *
mime_type(const char *path)
{
	const char *dot = strrchr(path, '.');
	size_t i;

	for (i = 0; dot != NULL && i < nitems(mime_types); i++)
		if (strcmp(dot + 1, mime_types[i].ext) == 0)
			return mime_types[i].type;
	return NULL;
}

/*
 * GET of a file under -F: a regular file of a known type, at most
 * WS_FILE_MAX bytes, read at once (a local file that small does not
 * hold up the loop in any way that matters).
 */
static void
http_file(struct client *c, const struct http_req *q)
{
	char path[WS_TARGET_MAX + sizeof "index.html"], t[4 * 64 + 8];
	const char *type, *why;
	struct stat st;
	size_t got = 0;
	ssize_t r;
	uint8_t *p;
	int fd, status, keep = c->ws->nreq < WS_REQUESTS_MAX;

	if (c->srv->www_fd < 0) {
		http_error(c, 404, "no pages are served here (-F); this port "
		    "takes WebSocket connections");
		return;
	}
	if ((status = http_path(q->target, path, sizeof path, &why)) != 0) {
		logx(c->srv, LOG_WARNING, "http peer=%s refused path %s", c->peer,
		    safe(q->target, t, sizeof t));
		http_error(c, status, why);
		return;
	}
	if ((type = mime_type(path)) == NULL ||
	    (fd = www_open(c->srv->www_fd, path)) < 0) {
		http_error(c, 404, "no such file");
		return;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > WS_FILE_MAX) {
		close(fd);
		http_error(c, 404, "not a regular file, or over "
		    XSTR(WS_FILE_MAX) " bytes");
		return;
	}
	http_head(c, 200, "", type, (size_t)st.st_size, keep);
	if ((p = wr_space(c, (size_t)st.st_size)) == NULL) {
		close(fd);
		return;
	}
	while (got < (size_t)st.st_size && (r = read(fd, p + got,
	    (size_t)st.st_size - got)) > 0)
		got += (size_t)r;
	close(fd);
	if (got < (size_t)st.st_size) {	/* shrank under us: cannot answer */
		cl_fail(c, "http: %s shorter than its size", path);
		return;
	}
	c->ws->plain = buf_used(&c->out);
	logx(c->srv, LOG_DEBUG, "http peer=%s GET %s 200 %zu bytes", c->peer,
	    safe(path, t, sizeof t), got);
	if (!keep)
		cl_linger(c, "http: served " XSTR(WS_REQUESTS_MAX) " requests");
	cl_flush(c);
}

static void
http_request(struct client *c, char *head, size_t len)
{
	struct http_req q;
	const char *why;
	int status = http_parse(head, len, &q, &why);

	c->ws->nreq++;
	if (status == 0 && strcmp(q.method, "GET") != 0) {
		status = 405;
		why = "only GET is served";
	} else if (status == 0 && q.body) {
		status = 400;
		why = "a GET with a body";
	} else if (status == 0 && q.host == NULL) {
		status = 400;
		why = "no Host header";
	}
	if (status != 0)
		http_error(c, status, why);
	else if (q.upgrade != NULL)
		ws_upgrade(c, &q);
	else
		http_file(c, &q);
}

/* Whole request heads from ws->raw, while the connection speaks HTTP. */
static void
http_input(struct client *c)
{
	struct ws *w = c->ws;

	while (!c->dead && c->state == ST_HTTP) {
		char *p = (char *)w->raw.data + w->raw.off;
		size_t n = buf_used(&w->raw), i;

		for (i = 3; i < n && i < WS_HEAD_MAX; i++)
			if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
			    p[i - 3] == '\r')
				break;
		if (i >= WS_HEAD_MAX) {
			http_error(c, 431, "request head over " XSTR(WS_HEAD_MAX)
			    " bytes");
			return;
		}
		if (i >= n)
			return;		/* not all here yet */
		http_request(c, p, i + 1);
		w->raw.off += i + 1;
	}
}

/* -- frames -- */

/* A protocol error: a close frame with this code, then the end. */
static void
ws_fail(struct client *c, unsigned code, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	c->ws->close_code = code;
	cl_linger(c, why);
}

/*
 * A frame header (RFC 6455 5.2): 1 with its length in *used, 0 while
 * more bytes are needed, -1 if refused (the client is closing then).
 * What two bytes show is checked before waiting for the rest.
 */
static int
ws_header(struct client *c, const uint8_t *p, size_t n, size_t *used)
{
	struct ws *w = c->ws;
	unsigned fin, op, len7;
	size_t hlen, i;
	uint64_t len;

	if (n < 2)
		return 0;
	fin = p[0] >> 7;
	op = p[0] & 15;
	len7 = p[1] & 127;
	if (p[0] & 0x70) {
		ws_fail(c, 1002, "WebSocket frame with RSV bits (no extension "
		    "was agreed)");
		return -1;
	}
	if (!(p[1] & 0x80)) {
		ws_fail(c, 1002, "unmasked WebSocket frame from the client "
		    "(RFC 6455 5.1)");
		return -1;
	}
	if (op == 1) {
		ws_fail(c, 1003, "WebSocket text frame: RFB is binary");
		return -1;
	}
	if ((op == 0 && !w->in_msg) || (op == 2 && w->in_msg)) {
		ws_fail(c, 1002, "WebSocket %s", op == 0 ? "continuation "
		    "outside a message" : "message inside a fragmented one");
		return -1;
	}
	if (op >= 8 && op <= 10 && (!fin || len7 > WS_CTL_MAX)) {
		ws_fail(c, 1002, "WebSocket control frame fragmented or over "
		    XSTR(WS_CTL_MAX) " bytes");
		return -1;
	}
	if (op > 2 && (op < 8 || op > 10)) {
		ws_fail(c, 1002, "WebSocket opcode %u", op);
		return -1;
	}
	hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
	if (n < hlen)
		return 0;
	len = len7;
	if (len7 >= 126)
		for (len = 0, i = 2; i < hlen - 4; i++)
			len = len << 8 | p[i];
	if (len >> 63) {
		ws_fail(c, 1002, "WebSocket frame length with its top bit set "
		    "(RFC 6455 5.2)");
		return -1;
	}
	if ((len7 == 126 && len < 126) || (len7 == 127 && len < 65536)) {
		ws_fail(c, 1002, "WebSocket frame length not in its shortest "
		    "form (RFC 6455 5.2)");
		return -1;
	}
	if (len > WS_FRAME_MAX) {
		ws_fail(c, 1009, "WebSocket frame of %llu bytes (limit %d)",
		    (unsigned long long)len, WS_FRAME_MAX);
		return -1;
	}
	memcpy(w->mask, p + hlen - 4, 4);
	w->mpos = 0;
	w->op = op;
	w->fin = fin;
	w->left = len;
	w->ctl_len = 0;
	w->in_frame = 1;
	*used = hlen;
	return 1;
}

static void
ws_frame_end(struct client *c)
{
	struct ws *w = c->ws;
	char why[64];

	w->in_frame = 0;
	switch (w->op) {
	case 0:
	case 2:
		w->in_msg = !w->fin;
		break;
	case 9:			/* ping: the latest one is answered */
		memcpy(w->pong, w->ctl, w->ctl_len);
		w->pong_len = (int)w->ctl_len;
		break;
	case 8:
		if (w->ctl_len == 1) {
			ws_fail(c, 1002, "WebSocket close frame of 1 byte");
			break;
		}
		/* echoed (RFC 6455 5.5.1); no code given is answered 1000 */
		w->close_code = w->ctl_len >= 2 ?
		    (unsigned)w->ctl[0] << 8 | w->ctl[1] : 1000;
		snprintf(why, sizeof why, "viewer closed the WebSocket (%u) in "
		    "state %s", w->close_code, state_name[c->state]);
		cl_linger(c, why);
		break;
	}			/* 10, pong: unasked ones are allowed */
}

/* Frames out of ws->raw: data payload unmasked into c->in, control
 * frames collected and answered. */
static void
ws_frames(struct client *c)
{
	struct ws *w = c->ws;

	while (!c->dead && c->state != ST_CLOSING && buf_used(&w->raw) > 0) {
		uint8_t *p = w->raw.data + w->raw.off, *dst;
		size_t n = buf_used(&w->raw), k, i;

		if (!w->in_frame) {
			if (ws_header(c, p, n, &k) <= 0)
				return;
			w->raw.off += k;
			if (w->left == 0)
				ws_frame_end(c);
			continue;
		}
		k = n < w->left ? n : (size_t)w->left;
		if (w->op >= 8) {
			dst = w->ctl + w->ctl_len;	/* left <= WS_CTL_MAX */
			w->ctl_len += k;
		} else {
			if (buf_reserve(&c->in, k) < 0) {
				cl_fail(c, "out of memory for input");
				return;
			}
			dst = c->in.data + c->in.len;
			c->in.len += k;
		}
		for (i = 0; i < k; i++)
			dst[i] = p[i] ^ w->mask[(w->mpos + i) & 3];
		w->mpos += (unsigned)k;
		w->raw.off += k;
		w->left -= k;
		if (w->left == 0)
			ws_frame_end(c);
	}
}

/* One read of TLS plaintext, decoded: >0 bytes read, 0 end, <0 as
 * io_read(). */
static ssize_t
ws_read(struct client *c)
{
	struct ws *w = c->ws;
	size_t room = c->state == ST_HTTP ? IN_CHUNK : in_room(c);
	ssize_t r;

	if (buf_reserve(&w->raw, room) < 0) {
		cl_fail(c, "out of memory for input");
		return -2;
	}
	if ((r = io_read(c, w->raw.data + w->raw.len, room)) <= 0)
		return r;
	w->raw.len += (size_t)r;
	if (c->state == ST_HTTP)
		http_input(c);
	if (w->open)
		ws_frames(c);
	if (w->raw.off == w->raw.len)
		w->raw.off = w->raw.len = 0;
	if (ws_due(c))		/* a pong or a close frame */
		cl_flush(c);
	return r;
}

/* Output of the layer's own, besides c->out. */
static int
ws_due(const struct client *c)
{
	const struct ws *w = c->ws;

	return w != NULL && (w->stage_len > 0 || w->pong_len >= 0 ||
	    (w->open && !w->close_sent && (w->close_code != 0 ||
	    c->state == ST_CLOSING)));
}

/* The next record: a pong, the next piece of c->out (HTTP as it is,
 * RFB as a binary frame), or at the end the close frame. */
static void
ws_stage(struct client *c)
{
	struct ws *w = c->ws;
	uint8_t *st = w->stage;
	size_t n = buf_used(&c->out), k, h;
	unsigned code;

	w->stage_off = w->staged_out = 0;
	w->stage_plain = 0;
	if (w->pong_len >= 0) {
		st[0] = 0x8a;
		st[1] = (uint8_t)w->pong_len;
		memcpy(st + 2, w->pong, (size_t)w->pong_len);
		w->stage_len = 2 + (size_t)w->pong_len;
		w->pong_len = -1;
	} else if (w->plain > 0) {
		k = w->plain < sizeof w->stage ? w->plain : sizeof w->stage;
		memcpy(st, c->out.data + c->out.off, k);
		w->stage_len = w->staged_out = k;
		w->stage_plain = 1;
	} else if (n > 0) {
		k = n < sizeof w->stage - 4 ? n : sizeof w->stage - 4;
		st[0] = 0x82;		/* FIN, binary */
		if (k < 126) {
			st[1] = (uint8_t)k;
			h = 2;
		} else {
			st[1] = 126;
			st[2] = (uint8_t)(k >> 8);
			st[3] = (uint8_t)k;
			h = 4;
		}
		memcpy(st + h, c->out.data + c->out.off, k);
		w->stage_len = h + k;
		w->staged_out = k;
	} else {
		code = w->close_code ? w->close_code : 1000;
		st[0] = 0x88;
		st[1] = 2;
		st[2] = (uint8_t)(code >> 8);
		st[3] = (uint8_t)code;
		w->stage_len = 4;
		w->close_sent = 1;
	}
}

/* Send (some of) the staged record: bytes of c->out now sent, or -1. */
static ssize_t
ws_write(struct client *c)
{
	struct ws *w = c->ws;
	size_t done;
	ssize_t r;

	if (w->stage_len == 0)
		ws_stage(c);
	if ((r = io_write(c, w->stage + w->stage_off, w->stage_len -
	    w->stage_off)) < 0)
		return -1;
	w->stage_off += (size_t)r;
	if (w->stage_off < w->stage_len)
		return 0;
	done = w->staged_out;
	if (w->stage_plain)
		w->plain -= done;
	w->stage_len = w->stage_off = w->staged_out = 0;
	return (ssize_t)done;
}

/* ---------------------------------------------------------------------
 * Listeners and the poll loop.
 * ------------------------------------------------------------------- */

/*
 * How far a login has come: what evicting it would throw away.  A
 * connection that finished TLS and started SASL is worth more than a bare
 * TCP connection, which anyone can open by the thousand.
 */
static int
cl_progress(const struct client *c)
{
	switch (c->state) {
	case ST_CLOSING:
		return -1;	/* failed already, only lingering */
	case ST_VERSION:
	case ST_SECURITY:
	case ST_VENCRYPT:
		return 0;	/* nothing invested */
	case ST_TLS:
		return 1;
	case ST_AUTH:
		return 2;
	default:
		return 3;	/* SASL, or past authentication */
	}
}

/*
 * Unauthenticated connections are capped per address (IPv6: per /64;
 * parallel guessing, half-open floods) and in total.  At the total cap a
 * newcomer takes the place of the least advanced pending connection, the
 * most recent among equals - but only of one that has invested nothing
 * yet: a flood of bare connections from many addresses crowds out
 * itself, never a login halfway through.  Logged, not counted as a
 * failed login.
 */
static int
preauth_refused(struct server *s, const struct sockaddr_storage *ss)
{
	char addr[INET6_ADDRSTRLEN], key[INET6_ADDRSTRLEN + 4];
	struct client *c, *victim = NULL;
	int total = 0, mine = 0;

	addr_text(ss, addr, sizeof addr);
	addr_key(addr, key, sizeof key);
	for (c = s->clients; c != NULL; c = c->next)
		if (!c->dead && !c->authed) {
			total++;
			mine += strcmp(c->akey, key) == 0;
			/* the list is newest first: < keeps the newest */
			if (victim == NULL ||
			    cl_progress(c) < cl_progress(victim))
				victim = c;
		}
	if (mine >= s->preauth_per_addr) {
		logx(s, LOG_WARNING, "refused peer=%s: %d unauthenticated "
		    "connections from %s (limit %d)", addr, mine, key,
		    s->preauth_per_addr);
		return 1;
	}
	if (total < s->preauth_max)
		return 0;
	if (victim == NULL || cl_progress(victim) > 0) {
		logx(s, LOG_WARNING, "refused peer=%s: %d unauthenticated "
		    "connections in all (limit %d), none to spare", addr, total,
		    s->preauth_max);
		return 1;
	}
	cl_fail(victim, "dropped to admit %s: %d unauthenticated connections "
	    "in all (limit %d)", addr, total, s->preauth_max);
	return 0;
}

static void
accept_all(struct server *s, const struct listener *l)
{
	while (s->nclients < s->max_clients) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd;

		memset(&ss, 0, sizeof ss);
		fd = accept(l->fd, (struct sockaddr *)&ss, &sl);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE ||
		    errno == ENOBUFS || errno == ENOMEM)) {
			/* the connection stays queued and the listener
			 * readable: stop asking for a while, do not spin */
			logx(s, LOG_ERR, "accept on %s: %s; not accepting for "
			    "%d ms", l->name, strerror(errno), ACCEPT_PAUSE_MS);
			s->accept_paused = mono_ms() + ACCEPT_PAUSE_MS;
			return;
		}
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				logx(s, LOG_ERR, "accept on %s: %s", l->name,
				    strerror(errno));
			return;
		}
		if (l->is_unix)
			ss.ss_family = AF_UNIX;
		if (preauth_refused(s, &ss)) {
			close(fd);
			continue;
		}
		if (l->is_ws)
			ws_accept(s, fd, &ss);
		else
			cl_new(s, fd, fd, &ss);
	}
}

static void
reap(struct server *s)
{
	struct client **pp = &s->clients, *c;
	int gone = 0;

	while ((c = *pp) != NULL) {
		if (c->dead) {
			*pp = c->next;
			s->nclients--;
			cl_free(c);
			gone = 1;
		} else {
			pp = &c->next;
		}
	}
	if (gone)
		cursor_policy(s);
}

/*
 * What falls due for a client, and when: the one place deadlines are
 * derived.  serve() sleeps until the nearest (srv_due()), and
 * check_deadlines() acts on those that have passed.
 */
enum due {
	DUE_NONE,
	DUE_LINGER,		/* a failure reason had its time: close */
	DUE_HANDSHAKE,		/* -o handshake: too slow to log in */
	DUE_STALL,		/* -D: queued output not read */
	DUE_GATE,		/* a held login may go on */
	DUE_PACE,		/* a paced viewer may get an update */
	DUE_FENCE,		/* our oldest fence is overdue */
};

static long long
cl_due(const struct server *s, const struct client *c, enum due *what)
{
	long long t = LLONG_MAX;

	*what = DUE_NONE;
	if (c->dead)
		return t;
	if (c->deadline) {
		t = c->deadline;
		*what = c->state == ST_CLOSING ? DUE_LINGER : DUE_HANDSHAKE;
	}
	if (buf_used(&c->out) > 0 && c->last_out + s->stall_ms < t) {
		t = c->last_out + s->stall_ms;
		*what = DUE_STALL;
	}
	if (c->gate_until && c->gate_until < t) {
		t = c->gate_until;
		*what = DUE_GATE;
	}
	if (c->pace_at && c->pace_at < t) {
		t = c->pace_at;
		*what = DUE_PACE;
	}
	if (c->pc.fence_due && c->pc.fence_due < t) {
		t = c->pc.fence_due;
		*what = DUE_FENCE;
	}
	return t;
}

static void
check_deadlines(struct server *s, long long now)
{
	struct client *c;
	enum due what;

	for (c = s->clients; c != NULL; c = c->next)
		while (!c->dead && cl_due(s, c, &what) <= now)
			switch (what) {
			case DUE_LINGER:
				c->dead = 1;	/* c->why says why */
				break;
			case DUE_HANDSHAKE:
				cl_fail(c, "handshake not finished in %d s (state "
				    "%s)", s->handshake_s, state_name[c->state]);
				break;
			case DUE_STALL:
				cl_fail(c, "viewer read nothing for %d s (-D)",
				    s->stall_ms / 1000);
				break;
			case DUE_GATE:
				cl_resume(c);
				break;
			case DUE_PACE:	/* send_updates() looks again */
				c->pace_at = 0;
				break;
			case DUE_FENCE:
				pace_overdue(c, now);
				break;
			case DUE_NONE:
				return;		/* LLONG_MAX: cannot be */
			}
}

/* The nearest moment anything is due: clients, and the source's next
 * picture while someone waits for it. */
static long long
srv_due(const struct server *s)
{
	const struct client *c;
	long long t = LLONG_MAX, d;
	enum due what;

	if (s->accept_paused)
		t = s->accept_paused;
	for (c = s->clients; c != NULL; c = c->next) {
		if ((d = cl_due(s, c, &what)) < t)
			t = d;
		if (cl_waiting(c) && buf_used(&c->out) < OUT_LOW &&
		    (!c->cu_on || c->pace_at == 0) && s->grab_due < t)
			t = s->grab_due;
		/* lossy tiles due for their lossless copy */
		if (cl_waiting(c) && buf_used(&c->out) < OUT_LOW &&
		    (!c->cu_on || c->pace_at == 0) && c->refresh_due &&
		    c->refresh_due < t)
			t = c->refresh_due;
	}
	return t;
}

static int
poll_timeout(const struct server *s, long long now)
{
	long long t = srv_due(s);

	if (t == LLONG_MAX)
		return -1;
	return t <= now ? 0 : t - now > INT_MAX ? INT_MAX : (int)(t - now);
}

static void
send_updates(struct server *s, long long now)
{
	struct client *c;
	int waiting = 0;

	for (c = s->clients; c != NULL; c = c->next)
		if (cl_waiting(c) && cl_paced(c, now))
			waiting = 1;
	if (!waiting)
		return;
	if (fb_source.next_ms(s->fb) == 0 || now >= s->grab_due) {
		int ms;

		fb_source.grab(s->fb);
		ms = fb_source.next_ms(s->fb);
		s->grab_due = ms < 0 ? LLONG_MAX : now + ms;
	}
	for (c = s->clients; c != NULL; c = c->next)
		if (cl_waiting(c) && c->pace_at == 0) {
			if (c->cu_on)
				cu_update(c, now);
			else
				cl_update(c);
			cl_flush(c);
		}
}

/* SIGHUP, the password file: swapped in only if it parses; sessions of
 * users it no longer has are closed. */
static void
reload_passwd(struct server *s)
{
	char err[PATH_MAX + 128], u[4 * USER_MAX + 8];
	uint8_t key[SHA256_DIGEST_SIZE];
	struct client *c;
	struct cred *v;
	size_t n;

	if (passwd_read(s->passwd_path, &v, &n, key, err, sizeof err) < 0) {
		logx(s, LOG_ERR, "reload: %s; keeping the old users", err);
		return;
	}
	passwd_install(s, v, n, key);
	logx(s, LOG_INFO, "reload: %s: %zu records", s->passwd_path, n);
	for (c = s->clients; c != NULL; c = c->next)
		if (!c->dead && c->authed && c->by_passwd &&
		    !passwd_has(s, c->user)) {
			logx(s, LOG_AUTH | LOG_NOTICE, "recheck peer=%s user=%s "
			    "removed from %s", c->peer, safe(c->user, u,
			    sizeof u), s->passwd_path);
			cl_fail(c, "user removed from the password file");
		}
}

/* SIGHUP, the ACL: swapped in only if it parses; then every session is
 * checked against the new rules, and only those whose answer changed are
 * touched. */
static void
reload_acl(struct server *s)
{
	char err[PATH_MAX + 128], rule[PATH_MAX + 16], u[4 * USER_MAX + 8];
	struct client *c;
	struct acl *a;

	if ((a = acl_load(s->acl_path, err, sizeof err)) == NULL) {
		logx(s, LOG_ERR, "reload: %s; keeping the old rules", err);
		return;
	}
	acl_free(s->acl);
	s->acl = a;
	logx(s, LOG_INFO, "reload: %s: %d rules, policy %s", a->path, a->n,
	    acl_action_name[a->policy]);
	for (c = s->clients; c != NULL; c = c->next) {
		enum acl_action act;

		if (c->dead || (c->state != ST_INIT && c->state != ST_NORMAL))
			continue;
		act = acl_check(a, c->user, &c->dnp, c->addr, rule, sizeof rule);
		if (act == ACL_DENY) {
			logx(s, LOG_AUTH | LOG_NOTICE, "recheck peer=%s user=%s "
			    "acl=deny rule=%s", c->peer, safe(c->user, u,
			    sizeof u), rule);
			cl_fail(c, "access withdrawn by %s", rule);
		} else if ((act == ACL_VIEW) != c->view_only) {
			logx(s, LOG_AUTH | LOG_NOTICE, "recheck peer=%s user=%s "
			    "acl=%s rule=%s", c->peer, safe(c->user, u,
			    sizeof u), acl_action_name[act], rule);
			c->view_only = act == ACL_VIEW;
			c->view_logged = 0;
		}
	}
}

static void
reload(struct server *s)
{
	if (s->passwd_path != NULL)
		reload_passwd(s);
	if (s->acl_path != NULL)
		reload_acl(s);
}

/* This turn's pollfd set, from state: listeners only below the client
 * cap, the source's descriptor, each client's reads, and its writes only
 * with something to write.  Returns the count. */
static int
poll_set(struct server *s, struct pollfd *pfd)
{
	struct client *c;
	int i, n = 0, fbfd = fb_source.fd(s->fb);

	s->polled_lst = s->nclients < s->max_clients && !s->accept_paused;
	for (i = 0; s->polled_lst && i < s->nlst; i++) {
		pfd[n].fd = s->lst[i].fd;
		pfd[n++].events = POLLIN;
	}
	s->polled_pam = -1;
	if (s->pam_fd >= 0) {
		s->polled_pam = n;
		pfd[n].fd = s->pam_fd;
		pfd[n++].events = POLLIN;
	}
	s->polled_fb = -1;
	if (fbfd >= 0) {
		s->polled_fb = n;
		pfd[n].fd = fbfd;
		pfd[n++].events = POLLIN;
	}
	for (c = s->clients; c != NULL; c = c->next) {
		int wantw = buf_used(&c->out) > 0 || c->tls_wpending ||
		    (c->state == ST_TLS && c->tls_wdir);

		c->pfd = c->pfdw = n;
		pfd[n].fd = c->fd;
		/* a held client is not read: what it sends waits with it */
		pfd[n++].events = cl_held(c) ? 0 : POLLIN;
		if (wantw && c->wfd != c->fd) {
			c->pfdw = n;
			pfd[n].fd = c->wfd;
			pfd[n++].events = POLLOUT;
		} else if (wantw) {
			pfd[c->pfd].events |= POLLOUT;
		}
	}
	return n;
}

/* Each client's events of this turn: writes, then reads (through rd:
 * cl_read, or a fuzzer's wrapper of it). */
static void
clients_dispatch(struct server *s, const struct pollfd *pfd,
    void (*rd)(struct client *))
{
	struct client *c;

	for (c = s->clients; c != NULL; c = c->next) {
		short rev;

		if (c->pfd < 0 || c->dead)
			continue;
		rev = pfd[c->pfd].revents;
		if (c->pfdw != c->pfd)
			rev |= pfd[c->pfdw].revents & POLLOUT;
		if (rev & POLLOUT)
			cl_flush(c);
		if (cl_held(c) && (rev & (POLLHUP | POLLERR)))
			cl_fail(c, "viewer went away while its login waited");
		if (!c->dead && ((rev & (POLLIN | POLLHUP | POLLERR)) ||
		    (c->state == ST_TLS && (rev & POLLOUT))))
			rd(c);
		c->pfd = c->pfdw = -1;
	}
}

/* The end of every turn: deadlines, updates, flushes, the dead. */
static void
turn_end(struct server *s, long long now)
{
	struct client *c;

	check_deadlines(s, now);
	send_updates(s, now);
	for (c = s->clients; c != NULL; c = c->next)
		if (!c->dead && buf_used(&c->out) > 0)
			cl_flush(c);
	reap(s);
}

/* What poll() found, then the deadlines, the updates, the flushes and
 * the dead. */
static void
poll_dispatch(struct server *s, const struct pollfd *pfd, long long now)
{
	int i;

	for (i = 0; s->polled_lst && i < s->nlst; i++)
		if (pfd[i].revents & POLLIN)
			accept_all(s, &s->lst[i]);
#ifdef HAVE_PAM
	if (s->polled_pam >= 0 &&
	    (pfd[s->polled_pam].revents & (POLLIN | POLLHUP | POLLERR)))
		pam_readable(s);
#endif
	if (s->polled_fb >= 0 && (pfd[s->polled_fb].revents & POLLIN)) {
		fb_source.readable(s->fb);
		s->grab_due = now;
	}
	clients_dispatch(s, pfd, cl_read);
	turn_end(s, now);
}

/* The loop: build the pollfd set, wait, dispatch.  0 when told to stop
 * (or after the one client of -1, -i), 1 if poll() itself fails. */
static int
serve(struct server *s)
{
	size_t npfd = (size_t)s->nlst + 2 * (size_t)s->max_clients + 2;
	struct pollfd *pfd;
	int n, rc = 0;

	if ((pfd = calloc(npfd, sizeof *pfd)) == NULL) {
		logx(s, LOG_ERR, "out of memory for the poll set");
		return 1;
	}
	while (!got_stop) {
		if (got_hup) {
			got_hup = 0;
			reload(s);
			reap(s);	/* those it closed go now, not at the
					   next wake-up (poll may wait forever) */
		}
		n = poll_set(s, pfd);
		if (poll(pfd, (nfds_t)n, poll_timeout(s, mono_ms())) < 0) {
			if (errno == EINTR)
				continue;
			logx(s, LOG_ERR, "poll: %s", strerror(errno));
			rc = 1;
			break;
		}
		poll_dispatch(s, pfd, mono_ms());
		if (s->accept_paused && mono_ms() >= s->accept_paused)
			s->accept_paused = 0;
		if (s->once && s->served > 0 && s->nclients == 0)
			break;
	}
	free(pfd);
	return rc;
}

static int
listen_on(struct server *s, const struct addrinfo *ai, int v6only,
    const char *what)
{
	struct listener *l;
	int fd, one = 1;
	char host[INET6_ADDRSTRLEN] = "?";

	if (s->nlst >= MAX_LISTENERS)
		die(2, "too many listening addresses (limit %d)", MAX_LISTENERS);
	if ((fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 16) < 0 ||
	    set_nonblock(fd) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	l = &s->lst[s->nlst++];
	l->fd = fd;
	l->is_unix = 0;
	if (ai->ai_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr,
		    host, sizeof host);
		snprintf(l->name, sizeof l->name, "[%s]:%s", host, what);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr,
		    host, sizeof host);
		snprintf(l->name, sizeof l->name, "%s:%s", host, what);
	}
	return 0;
}

/* -l ADDR for each address; a default address that this host lacks
 * (no IPv6) is skipped, an explicit one is an error. */
static void
listen_tcp(struct server *s, char **addrs, int naddrs, const char *port)
{
	static char *defaults[] = { "127.0.0.1", "::1" };
	int i, explicit = naddrs > 0, any_v4 = 0;

	if (!explicit) {
		addrs = defaults;
		naddrs = 2;
	}
	for (i = 0; i < naddrs; i++)
		if (strchr(addrs[i], ':') == NULL)
			any_v4 = 1;
	for (i = 0; i < naddrs; i++) {
		struct addrinfo hints, *res, *ai;
		int e;

		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = AI_PASSIVE;
		if ((e = getaddrinfo(addrs[i], port, &hints, &res)) != 0)
			die(explicit ? 2 : 1, "-l %s: %s", addrs[i],
			    gai_strerror(e));
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			/* "::" alone means every address, IPv4 too */
			int v6only = !(strcmp(addrs[i], "::") == 0 && !any_v4);

			if (listen_on(s, ai, v6only, port) == 0)
				continue;
			if (!explicit && (errno == EADDRNOTAVAIL ||
			    errno == EAFNOSUPPORT)) {
				logx(s, LOG_WARNING, "not listening on %s: %s",
				    addrs[i], strerror(errno));
				continue;
			}
			die(1, "cannot listen on %s port %s: %s", addrs[i],
			    port, strerror(errno));
		}
		freeaddrinfo(res);
	}
}

static void
listen_unix(struct server *s, const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	struct listener *l;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path)
		die(2, "-U %s: path too long (limit %zu)", path,
		    sizeof sun.sun_path - 1);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (lstat(path, &st) == 0) {
		/* a stale socket from a dead server may go; anything else not */
		int probe = socket(AF_UNIX, SOCK_STREAM, 0);

		if (!S_ISSOCK(st.st_mode))
			die(1, "-U %s: exists and is not a socket", path);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun,
		    sizeof sun) == 0)
			die(1, "-U %s: another server is listening there", path);
		if (probe >= 0)
			close(probe);
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ||
	    listen(fd, 16) < 0 || set_nonblock(fd) < 0)
		die(1, "cannot listen on %s: %s", path, strerror(errno));
	if (s->nlst >= MAX_LISTENERS)
		die(2, "too many listening addresses (limit %d)", MAX_LISTENERS);
	l = &s->lst[s->nlst++];
	l->fd = fd;
	l->is_unix = 1;
	snprintf(l->name, sizeof l->name, "unix:%s", path);
	s->unix_path = path;
}

/* -W PORT: wss:// on the -l addresses (loopback by default). */
static void
listen_ws(struct server *s, char **addrs, int naddrs, const char *port)
{
	char name[sizeof s->lst[0].name];
	int i = s->nlst;

	listen_tcp(s, addrs, naddrs, port);
	for (; i < s->nlst; i++) {
		s->lst[i].is_ws = 1;
		snprintf(name, sizeof name, "wss://%s", s->lst[i].name);
		memcpy(s->lst[i].name, name, sizeof name);
	}
}

/*
 * An address from the environment (UCSPI's TCPREMOTEIP, socat's
 * SOCAT_PEERADDR) for -i peers, in every form they use: 192.0.2.1,
 * 2001:db8::1, [0000:...:0001] (socat, IPv6), ::ffff:192.0.2.1, a %zone.
 * 0 and the address; -1 if the variable is not set; -2 if it is set but
 * is no address (the caller then treats the peer as remote).
 */
static int
env_peer(struct sockaddr_storage *ss, const char *ip, const char *port)
{
	const char *a = getenv(ip), *p = getenv(port);
	struct sockaddr_in *in = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;
	char buf[INET6_ADDRSTRLEN + 8];
	size_t n;
	long v = 0;
	char *end;

	memset(ss, 0, sizeof *ss);
	if (a == NULL)
		return -1;
	if (p != NULL) {
		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || *end || errno || v < 0 || v > 65535)
			v = 0;
	}
	n = strlen(a);
	if (n >= 2 && a[0] == '[' && a[n - 1] == ']') {
		a++;
		n -= 2;
	}
	if (n >= sizeof buf)
		return -2;
	memcpy(buf, a, n);
	buf[n] = '\0';
	buf[strcspn(buf, "%")] = '\0';		/* fe80::1%eth0 */
	if (inet_pton(AF_INET, buf, &in->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		in->sin_port = htons((uint16_t)v);
		return 0;
	}
	if (inet_pton(AF_INET6, buf, &in6->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)v);
		return 0;
	}
	return -2;
}

/*
 * -i: the one connection is on stdin/stdout (inetd, xinetd, systemd
 * Accept=yes, s6-tcpserver, socat EXEC).  The peer comes from the socket
 * when it is a TCP one, else from TCPREMOTEIP (UCSPI) or SOCAT_PEERADDR.
 * Only a UNIX socket with no such variable is a local peer; anything we
 * cannot name (a pipe, an address we cannot parse) is remote.
 */
static void
serve_stdin(struct server *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int local, r;

	memset(&ss, 0, sizeof ss);
	if (getpeername(STDIN_FILENO, (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		s->once = 1;
		if (cl_new(s, STDIN_FILENO, STDOUT_FILENO, &ss) == NULL)
			die(1, "-i: cannot use standard input and output");
		return;
	}
	local = ss.ss_family == AF_UNIX;
	if ((r = env_peer(&ss, "TCPREMOTEIP", "TCPREMOTEPORT")) == -1)
		r = env_peer(&ss, "SOCAT_PEERADDR", "SOCAT_PEERPORT");
	if (r == -2)
		logx(s, LOG_WARNING, "-i: the peer address in the environment "
		    "is not an IP address; treating the peer as remote");
	if (r != 0)
		ss.ss_family = r == -1 && local ? AF_UNIX : AF_UNSPEC;
	s->once = 1;
	if (cl_new(s, STDIN_FILENO, STDOUT_FILENO, &ss) == NULL)
		die(1, "-i: cannot use standard input and output");
}

/*
 * systemd socket activation without libsystemd: listening sockets (or,
 * with Accept=yes, one connection) from fd 3 on.  Returns how many.
 */
static int
inherit_sockets(struct server *s)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int n, fd, listening;
	socklen_t len;

	if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
		return 0;
	n = atoi(fds);
	if (n < 1 || n > MAX_LISTENERS)
		die(2, "LISTEN_FDS=%s: want 1 to %d", fds, MAX_LISTENERS);
	for (fd = 3; fd < 3 + n; fd++) {
		struct sockaddr_storage ss;
		struct listener *l;
		char host[INET6_ADDRSTRLEN];
		int port;

		len = sizeof listening;
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening,
		    &len) < 0)
			die(1, "LISTEN_FDS: fd %d: %s", fd, strerror(errno));
		len = sizeof ss;
		memset(&ss, 0, sizeof ss);
		getsockname(fd, (struct sockaddr *)&ss, &len);
		if (!listening) {	/* Accept=yes: serve this one */
			len = sizeof ss;
			memset(&ss, 0, sizeof ss);
			getpeername(fd, (struct sockaddr *)&ss, &len);
			s->once = 1;
			cl_new(s, fd, fd, &ss);
			continue;
		}
		if (set_nonblock(fd) < 0)
			die(1, "LISTEN_FDS: fd %d: %s", fd, strerror(errno));
		l = &s->lst[s->nlst++];
		l->fd = fd;
		l->is_unix = ss.ss_family == AF_UNIX;
		port = addr_text(&ss, host, sizeof host);
		if (l->is_unix)
			snprintf(l->name, sizeof l->name, "unix:(fd %d)", fd);
		else
			snprintf(l->name, sizeof l->name, ss.ss_family == AF_INET6 ?
			    "[%s]:%d" : "%s:%d", host, port);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return n;
}

/* -c HOST[:PORT]: dial a listening viewer (default port 5500). */
static void
reverse_connect(struct server *s, const char *spec)
{
	char host[256], port[8] = "5500";
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints, *res, *ai;
	int fd = -1, e;

	if (spec[0] == '[') {	/* [v6]:port */
		const char *rb = strchr(spec, ']');

		if (rb == NULL || (size_t)(rb - spec - 1) >= sizeof host)
			die(2, "-c %s: want HOST[:PORT] or [IPV6]:PORT", spec);
		memcpy(host, spec + 1, (size_t)(rb - spec - 1));
		host[rb - spec - 1] = '\0';
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else if (colon != NULL && strchr(spec, ':') == colon) {
		if ((size_t)(colon - spec) >= sizeof host)
			die(2, "-c %s: host name too long", spec);
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
	} else {		/* a name, or a bare IPv6 address */
		colon = NULL;
		if (strlen(spec) >= sizeof host)
			die(2, "-c %s: host name too long", spec);
		snprintf(host, sizeof host, "%s", spec);
	}
	if (colon != NULL) {
		char *end;
		long v;

		errno = 0;
		v = strtol(colon + 1, &end, 10);
		if (end == colon + 1 || *end || errno || v < 1 || v > 65535)
			die(2, "-c %s: the port must be 1 to 65535", spec);
		snprintf(port, sizeof port, "%s", colon + 1);
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0)
		die(1, "-c %s: %s", spec, gai_strerror(e));
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
		struct pollfd p;
		int err = 0, r;
		socklen_t el = sizeof err;

		if ((fd = socket(ai->ai_family, ai->ai_socktype, 0)) < 0)
			continue;
		/* start-up, not the loop: a bounded wait is fine here */
		set_nonblock(fd);
		r = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (r < 0 && errno == EINPROGRESS) {
			p.fd = fd;
			p.events = POLLOUT;
			if (poll(&p, 1, 10000) != 1 || getsockopt(fd, SOL_SOCKET,
			    SO_ERROR, &err, &el) < 0 || err != 0) {
				errno = err ? err : ETIMEDOUT;
				close(fd);
				fd = -1;
			}
		} else if (r < 0) {
			close(fd);
			fd = -1;
		}
		if (fd >= 0) {
			struct sockaddr_storage ss;

			memset(&ss, 0, sizeof ss);
			memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
			logx(s, LOG_INFO, "reverse connection to %s", spec);
			cl_new(s, fd, fd, &ss);
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		die(1, "-c %s: cannot connect: %s", spec, strerror(errno));
}

/* ---------------------------------------------------------------------
 * Configuration: files and option values.  Errors here end start-up:
 * status 2 for what the operator wrote, 1 for what the system did.
 * ------------------------------------------------------------------- */

/* The length of the first line of buf[0..n) (without LF or CRLF) if it
 * is printable text (UTF-8 allowed), else -1. */
static int
text_line(const char *buf, size_t n)
{
	size_t i, len;

	for (i = 0; i < n && buf[i] != '\n'; i++)
		;
	len = i > 0 && buf[i - 1] == '\r' ? i - 1 : i;
	for (i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
			return -1;
	return (int)len;
}

/* A byte with its bits in the other order: VNC's DES keys (rfbproto). */
static uint8_t
bits_reversed(uint8_t b)
{
	uint8_t r = 0;
	int k;

	for (k = 0; k < 8; k++)
		if (b & (1 << k))
			r |= (uint8_t)(0x80 >> k);
	return r;
}

/*
 * -w FILE: the VNC password, as plain text on the first line, or as
 * TigerVNC, RealVNC and TightVNC's vncpasswd write it: 8 bytes (16 with a
 * view-only password, which we ignore), the password DES-encrypted with
 * a key every VNC implementation knows - obfuscation, not protection.
 * Told apart by shape: 8 or 16 bytes with no line end are vncpasswd's;
 * else the first line, printable, is the password.  Anything else is
 * refused.
 */
static void
load_vnc_password(struct server *s, const char *path)
{
	static const uint8_t fixed[8] = { 23, 82, 107, 6, 35, 78, 88, 7 };
	char err[512];
	uint8_t buf[VNC_PASSWD_FILE_MAX + 1], pw[VNC_PASSWD_MAX + 1] = { 0 };
	uint8_t key[VNC_PASSWD_MAX];
	struct des_ctx obf;
	size_t n, i;
	FILE *f;

	if ((f = conf_open(path, S_IRWXG | S_IRWXO, "chmod 600 it", err,
	    sizeof err)) == NULL)
		die(2, "-w %s", err);
	n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	if ((n == 8 || n == 16) && memchr(buf, '\n', n) == NULL) {
		for (i = 0; i < 8; i++)	/* vncpasswd's d3des bit order */
			key[i] = bits_reversed(fixed[i]);
		des_set_key(&obf, key);
		des_decrypt(&obf, VNC_PASSWD_MAX, pw, buf);
		logx(s, LOG_INFO, "-w %s: a vncpasswd file", path);
	} else if (n > 0 && n <= VNC_PASSWD_FILE_MAX &&
	    text_line((char *)buf, n) > 0) {
		n = (size_t)text_line((char *)buf, n);
		if (n > VNC_PASSWD_MAX)
			logx(s, LOG_WARNING, "-w %s: VNC authentication uses "
			    "only the first %d characters", path,
			    VNC_PASSWD_MAX);
		memcpy(pw, buf, n < VNC_PASSWD_MAX ? n : VNC_PASSWD_MAX);
	} else {
		die(2, "-w %s: neither a line of text nor a vncpasswd file (8 "
		    "or 16 bytes, no newline)", path);
	}
	memset(buf, 0, sizeof buf);
	if (pw[0] == '\0')
		die(2, "-w %s: the password is empty", path);
	for (i = 0; i < VNC_PASSWD_MAX; i++)	/* NUL-padded, as viewers do */
		key[i] = bits_reversed(pw[i]);
	memset(pw, 0, sizeof pw);
	if (!des_set_key(&s->vnc_des, key))
		die(2, "-w %s: this password makes a weak DES key; choose "
		    "another", path);
	memset(key, 0, sizeof key);
	s->have_vnc_key = 1;
}

static int
parse_seclist(const char *list, const struct sectype **out)
{
	const char *p = list, *item;
	char names[256];
	size_t len;
	int n = 0, i;

	while (list_next(&p, &item, &len)) {
		const struct sectype *st = sectype_by_name(item, len);

		if (st == NULL)
			die(2, "-s: unknown security type '%.*s' (known: %s)",
			    (int)len, item, sectype_names(names, sizeof names,
			    ",", 0));
		for (i = 0; i < n; i++)
			if (out[i] == st)
				die(2, "-s: %s listed twice", st->name);
		out[n++] = st;
	}
	if (n == 0)
		die(2, "-s: empty list");
	return n;
}

/*
 * What is offered without -s (DESIGN 2; the README's viewer table).  Who
 * picks what decides the order: libvncclient (Remmina) takes the first
 * subtype it supports, so X509Plain - which its SASL cannot spoil (it
 * never asks for a user name) - comes first; gtk-vnc (remote-viewer)
 * picks by its own preference, X509SASL before X509Plain before TLSSASL;
 * TigerVNC has no SASL and picks X509Plain.  With -T only subtypes that
 * verify a client certificate; without a certificate, TLSSASL; on a UNIX
 * socket, a local transport, TLSSASL then SASL.
 */
static void
default_sectypes(struct server *s)
{
	const struct sectype *v[nitems(sectypes)];
	const char *tcp = s->verify_clients ? "x509plain,x509sasl" :
	    s->adhoc_crt != NULL ? "x509plain,tlssasl" :
	    s->x509 != NULL ? "x509plain,x509sasl,tlssasl" : "tlssasl";
	const char *uni = s->verify_clients ? "x509plain,x509sasl" :
	    "tlssasl,sasl";
	int i, n;

	for (n = parse_seclist(tcp, v), i = 0; i < n; i++)
		s->sec_tcp[s->nsec_tcp++] = v[i];
	for (n = parse_seclist(uni, v), i = 0; i < n; i++)
		s->sec_unix[s->nsec_unix++] = v[i];
}

/*
 * What each transport offers (DESIGN 2).  TCP: SASL only inside
 * VeNCrypt unless -I; UNIX sockets are a trusted local transport.
 */
/*
 * -W offers the wss-* types -s names, in its order; if it names none,
 * wss-plain (noVNC) and wss-sasl.  VNC authentication and None only when
 * -s names them.
 */
static void
setup_ws_sectypes(struct server *s, const char *list)
{
	const struct sectype *v[nitems(sectypes)];
	int i, n = list != NULL ? parse_seclist(list, v) : 0;

	for (i = 0; i < n; i++)
		if (v[i]->tls == TLS_WSS) {
			if (v[i]->start == auth_vnc && !s->have_vnc_key)
				die(2, "-s %s needs a password file (-w)",
				    v[i]->name);
			s->sec_ws[s->nsec_ws++] = v[i];
		}
	if (s->nsec_ws == 0) {
		s->sec_ws[s->nsec_ws++] = sectype_by_name("wss-plain", 9);
		s->sec_ws[s->nsec_ws++] = sectype_by_name("wss-sasl", 8);
	}
}

static void
setup_sectypes(struct server *s, const char *list, int insecure, int tcp)
{
	const struct sectype *v[nitems(sectypes)];
	int i, n, dropped = 0;

	/* a list of wss-* types alone leaves TCP and UNIX their defaults */
	for (n = 0, i = list != NULL ? parse_seclist(list, v) : 0; i > 0; i--)
		n += v[i - 1]->tls != TLS_WSS;
	if (n == 0)
		list = NULL;
	if (list == NULL) {
		default_sectypes(s);
		return;
	}
	n = parse_seclist(list, v);
	for (i = 0; i < n; i++) {
		if (v[i]->tls == TLS_WSS)
			continue;	/* -W's, setup_ws_sectypes() */
		if (v[i]->tls == TLS_X509 && s->x509 == NULL)
			die(2, "-s %s needs a certificate (-C and -K)", v[i]->name);
		if (v[i]->start == auth_vnc && !s->have_vnc_key)
			die(2, "-s %s needs a password file (-w)", v[i]->name);
		if (s->verify_clients && v[i]->tls != TLS_X509)
			logx(s, LOG_NOTICE, "-T: %s verifies no client "
			    "certificate; offered because -s lists it",
			    v[i]->name);
		s->sec_unix[s->nsec_unix++] = v[i];
		if (v[i]->type == SEC_SASL && !insecure) {
			dropped = tcp;
			continue;
		}
		s->sec_tcp[s->nsec_tcp++] = v[i];
	}
	if (tcp && s->nsec_tcp == 0)
		die(2, "-s %s: nothing left to offer on TCP (SASL needs TLS "
		    "there: use tlssasl or x509sasl, or -I)", list);
	if (dropped)
		logx(s, LOG_NOTICE, "sasl (type 20) is offered on UNIX sockets "
		    "only; -I allows it on TCP");
	if (insecure && tcp)
		for (i = 0; i < s->nsec_tcp; i++)
			if (s->sec_tcp[i]->type == SEC_SASL)
				logx(s, LOG_WARNING, "WARNING: -I: SASL without "
				    "TLS on TCP; nothing protects the session, "
				    "and PLAIN/LOGIN stay off there");
}

/* Mechanisms whose credentials this server can check. */
static const char *const mech_usable[] = {
	"SCRAM-SHA-256", "SCRAM-SHA-1", "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS",
	"PLAIN", "LOGIN", "GSSAPI", "GS2-KRB5",
};
#define NMECH_USABLE (int)nitems(mech_usable)

static void
setup_mechs(struct server *s, const char *list, int keytab)
{
	const char *p = list, *item;
	size_t len;
	int i, j;

	while (list_next(&p, &item, &len)) {
		for (i = 0; i < NMECH_USABLE; i++)
			if (strlen(mech_usable[i]) == len &&
			    strncmp(mech_usable[i], item, len) == 0)
				break;
		if (i == NMECH_USABLE)
			die(2, "-m: '%.*s' is not a mechanism vncsasl can check "
			    "(SCRAM-SHA-256, SCRAM-SHA-1, their -PLUS forms, "
			    "PLAIN, LOGIN, GSSAPI, GS2-KRB5)", (int)len, item);
		if (!gsasl_server_support_p(s->gsasl, mech_usable[i]))
			die(2, "-m %s: this GNU SASL cannot serve it",
			    mech_usable[i]);
		if (strstr(mech_usable[i], "GS") == mech_usable[i] && !keytab)
			die(2, "-m %s needs a keytab (-G): Cyrus viewers pick "
			    "it whenever it is listed, with no fallback",
			    mech_usable[i]);
		for (j = 0; j < s->nmechs; j++)
			if (s->mechs[j] == mech_usable[i])
				die(2, "-m: %s listed twice", mech_usable[i]);
		s->mechs[s->nmechs++] = mech_usable[i];
	}
	if (s->nmechs == 0)
		die(2, "-m: empty list");
}

/* -k: the password from the terminal (twice, no echo) or stdin's line. */
static void
read_password(const char *user, char *pass, size_t size)
{
	char again[PASSWORD_MAX + 2];
	struct termios t, quiet;
	FILE *tty = NULL;
	size_t n;

	if (isatty(STDIN_FILENO) && (tty = fopen("/dev/tty", "r+")) != NULL &&
	    tcgetattr(fileno(tty), &t) == 0) {
		quiet = t;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
		fprintf(tty, "Password for %s: ", user);
		fflush(tty);
		if (fgets(pass, (int)size, tty) == NULL)
			pass[0] = '\0';
		fprintf(tty, "\nAgain: ");
		fflush(tty);
		if (fgets(again, sizeof again, tty) == NULL)
			again[0] = '\0';
		fputc('\n', tty);
		tcsetattr(fileno(tty), TCSAFLUSH, &t);
		fclose(tty);
		if (strcmp(pass, again) != 0)
			die(2, "-k: the passwords differ");
		memset(again, 0, sizeof again);
	} else {
		if (tty != NULL)
			fclose(tty);
		if (fgets(pass, (int)size, stdin) == NULL)
			die(2, "-k: no password on standard input");
	}
	n = strlen(pass);
	if (n > 0 && pass[n - 1] != '\n' && n == size - 1)
		die(2, "-k: password longer than %d bytes", PASSWORD_MAX);
	pass[strcspn(pass, "\r\n")] = '\0';
	if (pass[0] == '\0')
		die(2, "-k: empty password");
}

static void
passwd_record(FILE *f, const char *user, Gsasl_hash h, const char *pass,
    const uint8_t *salt, size_t saltlen)
{
	char salted[GSASL_HASH_MAX_SIZE], ck[GSASL_HASH_MAX_SIZE];
	char sk[GSASL_HASH_MAX_SIZE], stk[GSASL_HASH_MAX_SIZE];
	char s64[2 * SALT_MAX], st64[64], sv64[64];
	size_t n = gsasl_hash_length(h);

	if (gsasl_scram_secrets_from_password(h, pass, SCRAM_ITER_DEFAULT,
	    (const char *)salt, saltlen, salted, ck, sk, stk) != GSASL_OK ||
	    b64_encode(salt, saltlen, s64, sizeof s64) < 0 ||
	    b64_encode((uint8_t *)stk, n, st64, sizeof st64) < 0 ||
	    b64_encode((uint8_t *)sk, n, sv64, sizeof sv64) < 0)
		die(1, "-k: cannot derive the SCRAM keys");
	fprintf(f, "%s:{%s}%d,%s,%s,%s\n", user, h == GSASL_HASH_SHA256 ?
	    "SCRAM-SHA-256" : "SCRAM-SHA-1", SCRAM_ITER_DEFAULT, s64, st64, sv64);
	memset(salted, 0, sizeof salted);
	memset(ck, 0, sizeof ck);
}

/* vncsasl -k FILE USER: add or replace USER, keeping every other line. */
static int
passwd_add(const char *path, const char *user)
{
	char pass[PASSWORD_MAX + 2], line[PASSWD_LINE_MAX + 2], err[512];
	char tmp[PATH_MAX];
	uint8_t salt[16], key[SHA256_DIGEST_SIZE];
	struct cred *v;
	size_t n, ulen = strlen(user);
	FILE *in = NULL, *out;
	int fd;

	if (!user_valid(user, ulen))
		die(2, "-k: bad user name (1-%d bytes, no ':' or control "
		    "characters, not starting with '#')", USER_MAX);
	if (access(path, F_OK) == 0) {	/* must parse, and be private */
		if (passwd_read(path, &v, &n, key, err, sizeof err) < 0)
			die(2, "-k %s", err);
		free(v);
		if ((in = fopen(path, "r")) == NULL)
			die(1, "-k %s: %s", path, strerror(errno));
	}
	read_password(user, pass, sizeof pass);
	if (gnutls_rnd(GNUTLS_RND_RANDOM, salt, sizeof salt) < 0)
		die(1, "-k: no random bytes");
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= sizeof tmp)
		die(2, "-k %s: path too long", path);
	if ((fd = mkstemp(tmp)) < 0 || (out = fdopen(fd, "w")) == NULL)
		die(1, "-k %s: %s", tmp, strerror(errno));
	while (in != NULL && fgets(line, sizeof line, in) != NULL)
		if (!(strncmp(line, user, ulen) == 0 && line[ulen] == ':'))
			fputs(line, out);
	passwd_record(out, user, GSASL_HASH_SHA256, pass, salt, sizeof salt);
	passwd_record(out, user, GSASL_HASH_SHA1, pass, salt, sizeof salt);
	memset(pass, 0, sizeof pass);
	if (in != NULL)
		fclose(in);
	if (fflush(out) != 0 || fsync(fd) != 0 || fclose(out) != 0 ||
	    rename(tmp, path) != 0) {
		unlink(tmp);
		die(1, "-k %s: %s", path, strerror(errno));
	}
	fprintf(stderr, "vncsasl: %s: %s set (SCRAM-SHA-256 and SCRAM-SHA-1, "
	    "%d iterations)\n", path, user, SCRAM_ITER_DEFAULT);
	return 0;
}

/* vncsasl -k FILE USER */
static int
passwd_tool(char **args, int nargs)
{
	if (nargs != 2)
		die(2, "-k FILE USER: want a file and a user name");
	if (gnutls_global_init() < 0)
		die(1, "cannot initialise GnuTLS");
	return passwd_add(args[0], args[1]);
}

/* -P: the password file, or none (then unknown users' fake salts come
 * from a random key, and password mechanisms refuse everyone). */
static void
setup_passwd(struct server *s)
{
	char err[PATH_MAX + 128];
	uint8_t key[SHA256_DIGEST_SIZE];
	struct cred *v;
	size_t n;

	if (s->passwd_path == NULL) {
		if (gnutls_rnd(GNUTLS_RND_RANDOM, s->fake_key,
		    sizeof s->fake_key) < 0)
			die(1, "no random bytes");
		s->max_iter = SCRAM_ITER_DEFAULT;
		return;
	}
	if (passwd_read(s->passwd_path, &v, &n, key, err, sizeof err) < 0)
		die(2, "-P %s", err);
	passwd_install(s, v, n, key);
}

static long parse_num(int, const char *, long, long);
static void usage(FILE *);
static void version(void);

/* -o NAME=VALUE,...: the limits an operator may want to move. */
static const struct limit_opt {
	const char *name;
	size_t off;
	int lo, hi;
	const char *what;
} limit_opts[] = {
	{ "preauth", offsetof(struct server, preauth_max), 1, 4096,
	    "unauthenticated connections at once" },
	{ "preauth-per-addr", offsetof(struct server, preauth_per_addr), 1,
	    4096, "unauthenticated connections from one address" },
	{ "handshake", offsetof(struct server, handshake_s), 1, 3600,
	    "seconds from connect to ServerInit" },
	{ "fail-delay", offsetof(struct server, fail_delay_cap), 0, 600,
	    "most seconds an address waits after failed logins" },
	{ "hash-rate", offsetof(struct server, hash_rate), 0, 1 << 30,
	    "PBKDF2 iterations a second for unauthenticated peers' passwords, "
	    "0 for no bound" },
	{ "fps", offsetof(struct server, fps), 1, FPS_MAX,
	    "most updates a second to a ContinuousUpdates viewer" },
	{ "link-kbit", offsetof(struct server, link_kbit), 0, 100000000,
	    "the most a viewer's link carries, kbit/s (0: what is measured)" },
};
#define NLIMIT_OPTS (int)nitems(limit_opts)

static void
parse_limits(struct server *s, const char *list)
{
	const char *p = list, *item;
	char name[32], names[256];
	size_t len, off;
	int i;

	while (list_next(&p, &item, &len)) {
		size_t nl = strcspn(item, "=");
		char *end;
		long v;

		if (nl >= len || nl >= sizeof name)
			die(2, "-o %.*s: want NAME=VALUE", (int)len, item);
		memcpy(name, item, nl);
		name[nl] = '\0';
		for (i = 0; i < NLIMIT_OPTS; i++)
			if (strcmp(limit_opts[i].name, name) == 0)
				break;
		if (i == NLIMIT_OPTS) {
			for (off = 0, i = 0; i < NLIMIT_OPTS; i++)
				off += (size_t)snprintf(names + off, sizeof names -
				    off, "%s%s", i ? ", " : "", limit_opts[i].name);
			die(2, "-o %s: unknown limit (%s)", name, names);
		}
		errno = 0;
		v = strtol(item + nl + 1, &end, 10);
		if (end == item + nl + 1 || end != item + len || errno ||
		    v < limit_opts[i].lo || v > limit_opts[i].hi)
			die(2, "-o %s: want %d to %d (%s)", name, limit_opts[i].lo,
			    limit_opts[i].hi, limit_opts[i].what);
		*(int *)(void *)((char *)s + limit_opts[i].off) = (int)v;
	}
}

/*
 * -u: after everything privileged is open (listeners, TLS key, password
 * file, ACL, framebuffer), become USER: groups, group, user, each checked,
 * then make sure root cannot be had back (OpenBSD doas order).
 */
static void
drop_privileges(struct server *s, const char *user)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(user)) == NULL)
		die(2, "-u %s: no such user", user);
	if (geteuid() != 0) {
		if (pw->pw_uid == geteuid())
			return;
		die(1, "-u %s: only root can become another user", user);
	}
	/* the socket is ours to remove at exit: after the drop too */
	if (s->unix_path != NULL &&
	    chown(s->unix_path, pw->pw_uid, pw->pw_gid) < 0)
		die(1, "-u %s: chown %s: %s", user, s->unix_path,
		    strerror(errno));
	if (setgroups(1, &pw->pw_gid) < 0)
		die(1, "-u %s: setgroups: %s", user, strerror(errno));
	if (setgid(pw->pw_gid) < 0)
		die(1, "-u %s: setgid: %s", user, strerror(errno));
	if (setuid(pw->pw_uid) < 0)
		die(1, "-u %s: setuid: %s", user, strerror(errno));
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() == 0 ||
	    getuid() == 0))
		die(1, "-u %s: still root after dropping privileges", user);
	logx(s, LOG_INFO, "running as %s (uid %ld)", user, (long)pw->pw_uid);
	/* SIGHUP re-reads the files as this user */
	if (s->passwd_path != NULL && access(s->passwd_path, R_OK) != 0)
		logx(s, LOG_WARNING, "-u %s: %s is not readable now: SIGHUP "
		    "cannot re-read it (give it to %s, mode 600)", user,
		    s->passwd_path, user);
	if (s->acl_path != NULL && access(s->acl_path, R_OK) != 0)
		logx(s, LOG_WARNING, "-u %s: %s is not readable now: SIGHUP "
		    "cannot re-read it", user, s->acl_path);
}

/* -t USER [ADDR [DN]]: what would the ACL say? (like doas -C) */
static int
acl_test(struct server *s, char **argv, int argc)
{
	struct sockaddr_storage ss;
	char addr[INET6_ADDRSTRLEN] = "unix", rule[PATH_MAX + 16];
	char err[PATH_MAX + 128];
	struct dnparts dn;
	enum acl_action act;

	if (s->acl_path != NULL &&
	    (s->acl = acl_load(s->acl_path, err, sizeof err)) == NULL)
		die(2, "-A %s", err);
	if (argc < 1 || argc > 3)
		die(2, "-t USER [ADDRESS [DN]]: want one to three arguments");
	memset(&ss, 0, sizeof ss);
	if (argc >= 2 && strcmp(argv[1], "unix") != 0) {
		if (inet_pton(AF_INET, argv[1],
		    &((struct sockaddr_in *)(void *)&ss)->sin_addr) == 1)
			ss.ss_family = AF_INET;
		else if (inet_pton(AF_INET6, argv[1],
		    &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr) == 1)
			ss.ss_family = AF_INET6;
		else
			die(2, "-t: '%s' is not an IP address or unix", argv[1]);
		addr_text(&ss, addr, sizeof addr);
	}
	memset(&dn, 0, sizeof dn);
	if (argc == 3 && dn_split(argv[2], &dn, 1) < 0)
		die(2, "-t: '%s' is not a DN (RDNs TYPE=value, separated by "
		    "commas; at most %d RDNs and %d bytes)", argv[2],
		    DN_RDNS_MAX, DN_MAX);
	act = acl_check(s->acl, argv[0], &dn, addr, rule, sizeof rule);
	printf("%s rule=%s from=%s\n", acl_action_name[act], rule, addr);
	return 0;
}

/* ---------------------------------------------------------------------
 * main
 * ------------------------------------------------------------------- */

static void
usage(FILE *f)
{
	char names[256];

	fprintf(f,
"usage: vncsasl [-1iIvV] [-l addr]... [-p port] [-U path] [-c host[:port]]\n"
"               [-s types] [-o limits] [-u user]\n"
"               [-m mechs] [-P file] [-A acl] [-C cert -K key [-T ca]]\n"
"               [-G keytab]"
" [-H host] [-w file] [-x arg] [-n name] [-M max]\n"
"               [-L stderr|syslog] [-Z level] [-D secs]\n"
"               [-W port [-F dir] [-O origins]]\n"
"       vncsasl -k file user\n"
"       vncsasl -A acl -t user [address [dn]]\n"
"  -l ADDR   listen address, repeatable (default 127.0.0.1 and ::1)\n"
"  -p PORT   TCP port, 0 for none (default 5900)\n"
"  -U PATH   also listen on a UNIX socket\n"
"  -W PORT   also listen for browsers (noVNC): WebSocket over TLS, wss://,\n"
"            on the -l addresses, with the -C/-K certificate; offers\n"
"            wss-plain,wss-sasl unless -s names wss-* types\n"
"  -F DIR    on -W, serve the files of DIR (noVNC's page: GET only, no\n"
"            listing, no symbolic links, nothing outside DIR)\n"
"  -O LIST   on -W, page origins allowed to connect (https://host:port,\n"
"            ..., or *); default: the page's own, https://HOST\n"
"  -s LIST   security types offered, in order, from: %s\n"
"            (default TCP: x509plain,x509sasl,tlssasl with -C, tlssasl\n"
"            without; UNIX: tlssasl,sasl; see the man page)\n"
"  -I        also offer sasl (type 20) on TCP without TLS (insecure)\n"
"  -m LIST   SASL mechanisms (default SCRAM-SHA-256,SCRAM-SHA-1)\n"
"  -P FILE   password file (mode 600; see -k); -P pam:SERVICE: system\n"
"            accounts through PAM (both may be given).  Without -P, -G\n"
"            and -w: ad-hoc mode, a one-time user printed at start\n"
"  -k F U    add or replace user U in password file F, then exit\n"
"  -A FILE   ACL: allow/deny/view rules (see acl.txt.example; SIGHUP\n"
"            reloads it and the password file)\n"
"  -t U [A [DN]]  with -A: print the ACL's answer for user U from\n"
"            address A (or unix) with certificate subject DN, then exit\n"
"  -C FILE   TLS certificate chain (PEM), with -K FILE its key\n"
"  -T FILE   CA: require and verify client certificates (x509 types)\n"
"  -G FILE   Kerberos keytab (service vnc/HOST) for GSSAPI, GS2-KRB5\n"
"  -H HOST   host name viewers connect to, for Kerberos (default: ours)\n"
"  -w FILE   VNC authentication password (first line, mode 600)\n"
"  -x ARG    framebuffer source: %s\n"
"  -n NAME   desktop name (default: host name)\n"
"  -M N      most clients at once (default %d)\n"
"  -o LIMITS  NAME=VALUE,...: preauth (unauthenticated connections, %d),\n"
"            preauth-per-addr (%d), handshake (seconds, %d), fail-delay\n"
"            (most seconds an address waits after failed logins, %d),\n"
"            hash-rate (PBKDF2 iterations/s for not yet logged-in\n"
"            peers' passwords, %d; 0: no bound), fps (most updates\n"
"            a second to a ContinuousUpdates viewer, %d), link-kbit\n"
"            (the most a viewer's link carries; default: measured)\n"
"  -u USER   drop privileges to USER once everything is open\n"
"  -i        inetd mode: serve the connection on stdin/stdout\n"
"  -c H[:P]  reverse connection to a listening viewer (port 5500)\n"
"  -Z LEVEL  zlib level for ZRLE and Tight, 0-9 (default %d; a viewer's\n"
"            CompressLevel overrides it; slow links get %d too)\n"
"  -D SECS   drop a viewer that reads nothing for SECS (default %d)\n"
"  -1        exit after the first client leaves\n"
"  -L DEST   log to stderr (default) or syslog\n"
"  -v        verbose log\n"
"  -V        print version and build options\n",
	    sectype_names(names, sizeof names, ",", 0),
	    fb_source.arg_help, MAX_CLIENTS, PREAUTH_MAX, PREAUTH_PER_ADDR,
	    HANDSHAKE_S, FAIL_DELAY_CAP, HASH_RATE, FPS_DEFAULT, ZLEVEL_DEFAULT,
	    ZLEVEL_SMALL, STALL_SECS);
}

static void
version(void)
{
	char names[256];
	Gsasl *g;
	int i;

	printf("vncsasl %s\n", VNCSASL_VERSION);
	printf("framebuffer: %s\n", fb_source.name);
	printf("tls: on (GnuTLS %s): VeNCrypt %s\n", gnutls_check_version(NULL),
	    sectype_names(names, sizeof names, " ", 1));
	printf("sasl: GNU SASL %s:", gsasl_check_version(NULL));
	if (gsasl_init(&g) == GSASL_OK) {
		for (i = 0; i < NMECH_USABLE; i++)
			if (gsasl_server_support_p(g, mech_usable[i]))
				printf(" %s", mech_usable[i]);
		gsasl_done(g);
	}
#ifdef HAVE_PAM
	printf("\npam: yes (-P pam:SERVICE)");
#else
	printf("\npam: no (built without it)");
#endif
	printf("\nsecurity types: %s\n", sectype_names(names, sizeof names, " ",
	    0));
	printf("encodings: raw hextile zrle tight (zlib %s, -Z level, default "
	    "%d; JPEG: libjpeg %d); pseudo: DesktopSize ExtendedDesktopSize "
	    "Cursor LastRect CompressLevel QualityLevel Fence "
	    "ContinuousUpdates ExtendedClipboard%s\n", zlibVersion(),
	    ZLEVEL_DEFAULT, JPEG_LIB_VERSION, fb_source.keycode != NULL ?
	    " QEMUExtendedKeyEvent" : "");
	printf("wss: -W (RFC 6455 over TLS), -F pages, -O origins\n");
}

static long
parse_num(int opt, const char *arg, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (end == arg || *end != '\0' || errno || v < lo || v > hi)
		die(2, "-%c %s: want a number from %ld to %ld", opt, arg, lo, hi);
	return v;
}

/* The command line, parsed: what main()'s steps open and set up. */
struct opts {
	char *addrs[MAX_LISTENERS];
	int naddrs;
	const char *port, *unix_path, *reverse, *fbarg, *seclist, *mechs;
	const char *vncpass, *cert, *key, *ca, *keytab, *limits, *runas;
	const char *wsport, *www, *origins;	/* -W, -F, -O */
	int insecure, kmode, tmode, inetd, log_given, explicit_listen;
	char **args;		/* operands, for -k and -t */
	int nargs;
};

/* Options that only name a file or a value for a later step. */
static const struct str_opt {
	int opt;
	size_t off;
} str_opts[] = {
	{ 'o', offsetof(struct opts, limits) },
	{ 'u', offsetof(struct opts, runas) },
	{ 'c', offsetof(struct opts, reverse) },
	{ 's', offsetof(struct opts, seclist) },
	{ 'm', offsetof(struct opts, mechs) },
	{ 'C', offsetof(struct opts, cert) },
	{ 'K', offsetof(struct opts, key) },
	{ 'T', offsetof(struct opts, ca) },
	{ 'G', offsetof(struct opts, keytab) },
	{ 'w', offsetof(struct opts, vncpass) },
	{ 'x', offsetof(struct opts, fbarg) },
	{ 'W', offsetof(struct opts, wsport) },
	{ 'F', offsetof(struct opts, www) },
	{ 'O', offsetof(struct opts, origins) },
};

/* Options that set a flag of the command line (o) or of the server (s). */
static const struct flag_opt {
	int opt;
	int in_server;
	size_t off;
} flag_opts[] = {
	{ '1', 1, offsetof(struct server, once) },
	{ 'v', 1, offsetof(struct server, verbose) },
	{ 'I', 0, offsetof(struct opts, insecure) },
	{ 'k', 0, offsetof(struct opts, kmode) },
	{ 't', 0, offsetof(struct opts, tmode) },
	{ 'i', 0, offsetof(struct opts, inetd) },
};

static void
server_defaults(struct server *s)
{
	s->max_clients = MAX_CLIENTS;
	s->pam_fd = -1;
	s->preauth_max = PREAUTH_MAX;
	s->preauth_per_addr = PREAUTH_PER_ADDR;
	s->handshake_s = HANDSHAKE_S;
	s->fail_delay_cap = FAIL_DELAY_CAP;
	s->hash_rate = HASH_RATE;
	s->zlevel = ZLEVEL_DEFAULT;
	s->fps = FPS_DEFAULT;
	s->stall_ms = STALL_SECS * 1000;
}

/* Options with a value to check now, or an effect of their own. */
static void
parse_opt(struct server *s, struct opts *o, int ch)
{
	switch (ch) {
	case 'l':
		if (o->naddrs >= MAX_LISTENERS)
			die(2, "-l: too many addresses (limit %d)",
			    MAX_LISTENERS);
		o->addrs[o->naddrs++] = optarg;
		o->explicit_listen = 1;
		break;
	case 'p':
		parse_num('p', optarg, 0, 65535);
		o->port = optarg;
		o->explicit_listen = 1;
		break;
	case 'U':
		o->unix_path = optarg;
		o->explicit_listen = 1;
		break;
	case 'P':
		if (strncmp(optarg, "pam:", 4) == 0) {
			if (optarg[4] == '\0' || strchr(optarg + 4, '/'))
				die(2, "-P %s: want pam:SERVICE, a service "
				    "name in /etc/pam.d", optarg);
			s->pam_service = optarg + 4;
		} else if (s->passwd_path != NULL) {
			die(2, "-P %s: one password file at most (and "
			    "pam:SERVICE)", optarg);
		} else {
			s->passwd_path = optarg;
		}
		break;
	case 'A':
		s->acl_path = optarg;
		break;
	case 'H':
		if (strlen(optarg) == 0 || strlen(optarg) > 255)
			die(2, "-H: want a host name of 1-255 bytes");
		s->sasl_host = optarg;
		break;
	case 'n':
		if (strlen(optarg) > NAME_MAX_LEN)
			die(2, "-n: name longer than %d bytes", NAME_MAX_LEN);
		snprintf(s->name, sizeof s->name, "%s", optarg);
		break;
	case 'M':
		s->max_clients = (int)parse_num('M', optarg, 1, 4096);
		break;
	case 'Z':
		s->zlevel = (int)parse_num('Z', optarg, 0, 9);
		break;
	case 'D':
		s->stall_ms = (int)parse_num('D', optarg, 1, STALL_SECS_MAX) *
		    1000;
		break;
	case 'L':
		o->log_given = 1;
		if (strcmp(optarg, "syslog") == 0)
			s->use_syslog = 1;
		else if (strcmp(optarg, "stderr") != 0)
			die(2, "-L %s: want stderr or syslog", optarg);
		break;
	case 'V':
		version();
		exit(0);
	case 'h':
		usage(stdout);
		exit(0);
	case ':':
		die(2, "option -%c needs a value (vncsasl -h for help)", optopt);
		break;
	default:
		die(2, "unknown option -%c (vncsasl -h for help)", optopt);
	}
}

/* Step 1: the command line into o (and the server's plain settings). */
static void
parse_args(struct server *s, struct opts *o, int argc, char **argv)
{
	size_t i;
	int ch;

	memset(o, 0, sizeof *o);
	o->port = "5900";
	opterr = 0;		/* our own one-line errors, exit status 2 */
	while ((ch = getopt(argc, argv,
	    ":1hl:p:U:s:w:x:n:M:L:vVm:P:A:C:K:T:G:H:Ikto:u:ic:Z:D:W:F:O:")) !=
	    -1) {
		for (i = 0; i < nitems(str_opts); i++)
			if (str_opts[i].opt == ch)
				*(const char **)(void *)((char *)o +
				    str_opts[i].off) = optarg;
		for (i = 0; i < nitems(flag_opts); i++)
			if (flag_opts[i].opt == ch)
				*(int *)(void *)((flag_opts[i].in_server ?
				    (char *)s : (char *)o) + flag_opts[i].off) =
				    1;
		if (strchr("oucsmCKTGwx1vIktiWFO", ch) == NULL)
			parse_opt(s, o, ch);
	}
	o->args = argv + optind;
	o->nargs = argc - optind;
	if (o->kmode || o->tmode)
		return;
	if (o->nargs != 0)
		die(2, "unexpected argument '%s'", o->args[0]);
	if ((o->cert == NULL) != (o->key == NULL))
		die(2, "-C and -K go together");
	if (o->limits != NULL)
		parse_limits(s, o->limits);
	if (o->inetd && (o->explicit_listen || o->reverse != NULL ||
	    o->wsport != NULL))
		die(2, "-i serves standard input; it takes no -l, -p, -U, -W or "
		    "-c");
	if (o->wsport != NULL)
		parse_num('W', o->wsport, 1, 65535);
	else if (o->www != NULL || o->origins != NULL)
		die(2, "-F and -O are for the wss:// port: they need -W");
	if (o->inetd && !o->log_given)	/* stderr may be the connection */
		s->use_syslog = 1;
	if (o->ca != NULL && o->cert == NULL)
		die(2, "-T needs a server certificate (-C and -K)");
}

/*
 * -W, -F, -O: the wss:// port's certificate (the server's, or the one
 * the ad-hoc mode made in memory),
 * its security types, the page directory, the Origins allowed.
 */
static void setup_ws_sectypes(struct server *, const char *);

static void
setup_ws(struct server *s, const struct opts *o)
{
	s->www_fd = -1;
	if (o->wsport == NULL)
		return;
	if (s->x509 == NULL)	/* none given, and not ad hoc */
		die(2, "-W needs a certificate (-C and -K): a browser speaks "
		    "wss:// only to a server with one");
	setup_ws_sectypes(s, o->seclist);
	s->origins = o->origins;
	if (o->www != NULL && (s->www_fd = open(o->www, O_RDONLY |
	    O_DIRECTORY | O_CLOEXEC)) < 0)
		die(2, "-F %s: %s", o->www, strerror(errno));
	s->www_dir = o->www;
}

/*
 * Step 2: everything authentication needs, opened while privileged: the
 * TLS key, GNU SASL and its mechanisms, the keytab, the password file,
 * the ACL, the VNC password, and what each transport offers.
 */
static void
setup_auth(struct server *s, const struct opts *o)
{
	static char hostname[256];
	char err[PATH_MAX + 128];
	int adhoc;

	if (gnutls_global_init() < 0)
		die(1, "cannot initialise GnuTLS");
	if (gethostname(hostname, sizeof hostname - 1) < 0)
		snprintf(hostname, sizeof hostname, "localhost");
	hostname[sizeof hostname - 1] = '\0';
	adhoc = adhoc_wanted(s, o->seclist, o->keytab != NULL,
	    o->vncpass != NULL, o->inetd);
	tls_setup(s, o->cert, o->key, o->ca);
	if (adhoc && s->x509 == NULL)
		adhoc_cert(s, hostname);
	tls_x509_setup(s);
	if (gsasl_init(&s->gsasl) != GSASL_OK)
		die(1, "cannot initialise GNU SASL");
	gsasl_callback_set(s->gsasl, sasl_callback);
	gsasl_callback_hook_set(s->gsasl, s);
	if (o->keytab != NULL) {
		if (access(o->keytab, R_OK) != 0)
			die(1, "-G %s: %s", o->keytab, strerror(errno));
		setenv("KRB5_KTNAME", o->keytab, 1);
	}
	setup_mechs(s, o->mechs ? o->mechs : "SCRAM-SHA-256,SCRAM-SHA-1",
	    o->keytab != NULL);
	if (s->sasl_host == NULL)
		s->sasl_host = hostname;
	if (s->name[0] == '\0')
		snprintf(s->name, sizeof s->name, "%s", hostname);
	if (adhoc)
		adhoc_user(s);
	else
		setup_passwd(s);
#ifdef HAVE_PAM
	pam_setup(s);
#else
	if (s->pam_service != NULL)
		die(2, "-P pam:%s: this vncsasl was built without PAM",
		    s->pam_service);
#endif
	if (s->acl_path != NULL &&
	    (s->acl = acl_load(s->acl_path, err, sizeof err)) == NULL)
		die(2, "-A %s", err);
	if (o->vncpass != NULL)
		load_vnc_password(s, o->vncpass);
	setup_sectypes(s, o->seclist, o->insecure, strcmp(o->port, "0") != 0 ||
	    o->reverse != NULL);
	setup_ws(s, o);
}

/* Step 3: the framebuffer source, with the server's side of its seam. */
static void
setup_source(struct server *s, const char *arg)
{
	char err[512];

	s->host.srv = s;
	s->host.damage = srv_damage;
	s->host.resized = srv_resized;
	s->host.cut_text = srv_cut_text;
	s->host.cut_text_utf8 = srv_cut_text_utf8;
	s->host.cursor = srv_cursor;
	s->host.log = srv_log;
	errno = 0;
	if ((s->fb = fb_source.open(arg, &s->host, err, sizeof err)) == NULL)
		die(errno == EINVAL ? 2 : 1, "-x: %s source: %s", fb_source.name,
		    err);
	if (grid_setup(s) < 0)
		die(1, "out of memory");
}

/* Step 4: listeners (or the one inherited connection), and -c. */
static void
setup_listeners(struct server *s, const struct opts *o)
{
	if (o->inetd) {
		serve_stdin(s);
	} else if (inherit_sockets(s) == 0) {
		if (strcmp(o->port, "0") != 0)
			listen_tcp(s, (char **)o->addrs, o->naddrs, o->port);
		else if (o->naddrs > 0 && o->wsport == NULL)
			die(2, "-l given but -p 0 disables TCP");
		if (o->unix_path != NULL)
			listen_unix(s, o->unix_path);
	}
	if (o->wsport != NULL)
		listen_ws(s, (char **)o->addrs, o->naddrs, o->wsport);
	if (o->reverse != NULL)
		reverse_connect(s, o->reverse);
	if (s->nlst == 0 && s->clients == NULL)
		die(2, "nothing to listen on (-p 0 and no -U) and no -c");
}

static void
setup_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Step 6: OpenBSD: from here on, only what serving needs. */
static void
sandbox(const struct server *s)
{
#ifdef __OpenBSD__
	if (s->passwd_path != NULL && unveil(s->passwd_path, "r") < 0)
		die(1, "unveil: %s", strerror(errno));
	if (s->acl_path != NULL && unveil(s->acl_path, "r") < 0)
		die(1, "unveil: %s", strerror(errno));
	if (s->unix_path != NULL && unveil(s->unix_path, "c") < 0)
		die(1, "unveil: %s", strerror(errno));
	if (s->www_dir != NULL && unveil(s->www_dir, "r") < 0)
		die(1, "unveil: %s", strerror(errno));
	if (pledge("stdio rpath cpath inet unix", NULL) < 0)
		die(1, "pledge: %s", strerror(errno));
#else
	(void)s;
#endif
}

/*
 * The ad-hoc mode's one and only word about its secret, on stderr (never
 * the log): the line scripts read, then what to paste into each viewer.
 * The password is wiped once it is out.
 */
static void
adhoc_announce(struct server *s, const struct opts *o)
{
	char fp[3 * 32 + 1], host[260] = "127.0.0.1";
	gnutls_datum_t pem = { NULL, 0 };
	int i, tcp = strcmp(o->port, "0") != 0;

	cert_fingerprint(s, fp, sizeof fp);
	for (i = 0; i < o->naddrs; i++)	/* an address the viewer can use */
		if (strcmp(o->addrs[i], "0.0.0.0") && strcmp(o->addrs[i], "::")) {
			snprintf(host, sizeof host, "%s", o->addrs[i]);
			break;
		}
	if (o->naddrs > 0 && i == o->naddrs)
		snprintf(host, sizeof host, "%s", s->sasl_host);
	else if (strchr(host, ':') && strlen(host) + 3 <= sizeof host) {
		memmove(host + 1, host, strlen(host) + 1);	/* [IPv6] */
		host[0] = '[';
		strcat(host, "]");
	}
	fprintf(stderr, "ad-hoc: user=%s password=%s sha256=%s\n", ADHOC_USER,
	    s->adhoc_pw, fp[0] ? fp : "-");
	fprintf(stderr, "vncsasl: ad-hoc: a one-time user and password, in "
	    "memory only; they end with this process\n");
	if (tcp)
		fprintf(stderr, "vncsasl: ad-hoc: TigerVNC or Remmina (X509Plain; "
		    "accept the certificate if its SHA-256 fingerprint is the "
		    "one above):\n    VNC_USERNAME=%s VNC_PASSWORD='%s' "
		    "vncviewer %s::%s\n", ADHOC_USER, s->adhoc_pw, host, o->port);
	if (o->wsport != NULL)	/* -W: the page of -F, or what to aim one at */
		fprintf(stderr, "vncsasl: ad-hoc: a browser (accept the "
		    "certificate if its SHA-256 fingerprint is the one "
		    "above):\n    %s://%s:%s/%s\n", s->www_fd >= 0 ? "https" :
		    "wss", host, o->wsport, s->www_fd >= 0 && faccessat(s->www_fd,
		    "vnc.html", R_OK, 0) == 0 ? "vnc.html" : "");
	if (tcp && s->adhoc_crt != NULL)
		fprintf(stderr, "vncsasl: ad-hoc: remote-viewer (gtk-vnc "
		    "trusts no certificate it has not been given): save "
		    "the certificate below as ~/.pki/CA/cacert.pem, then\n"
		    "    remote-viewer vnc://%s:%s\n", host, o->port);
	else if (tcp)
		fprintf(stderr, "vncsasl: ad-hoc: remote-viewer (with the CA "
		    "of %s in ~/.pki/CA/cacert.pem):\n"
		    "    remote-viewer vnc://%s:%s\n", s->cert_path ?
		    s->cert_path : "the certificate", host, o->port);
	if (s->adhoc_crt != NULL && gnutls_x509_crt_export2(s->adhoc_crt,
	    GNUTLS_X509_FMT_PEM, &pem) == 0) {
		fprintf(stderr, "%.*s", (int)pem.size, (const char *)pem.data);
		gnutls_free(pem.data);
	}
	memset(s->adhoc_pw, 0, sizeof s->adhoc_pw);
}

/* Step 7: what is offered, and the readiness line scripts wait for. */
static void
announce(struct server *s, const struct opts *o)
{
	char line[MAX_LISTENERS * (INET6_ADDRSTRLEN + 24)] = "";
	char tcp[160] = "", uni[160] = "", wss[160] = "";
	char ml[SASL_MECHLIST_MAX + 1] = "";
	size_t off = 0;
	int i;

	for (i = 0; i < s->nsec_tcp; i++)
		snprintf(tcp + strlen(tcp), sizeof tcp - strlen(tcp), "%s%s",
		    i ? "," : "", s->sec_tcp[i]->name);
	for (i = 0; i < s->nsec_unix; i++)
		snprintf(uni + strlen(uni), sizeof uni - strlen(uni), "%s%s",
		    i ? "," : "", s->sec_unix[i]->name);
	for (i = 0; i < s->nsec_ws; i++)
		snprintf(wss + strlen(wss), sizeof wss - strlen(wss), "%s%s",
		    i ? "," : " wss=", s->sec_ws[i]->name);
	for (i = 0; i < s->nmechs; i++)
		snprintf(ml + strlen(ml), sizeof ml - strlen(ml), "%s%s",
		    i ? "," : "", s->mechs[i]);
	logx(s, LOG_INFO, "security tcp=%s unix=%s%s sasl=%s records=%zu", tcp,
	    uni, wss, ml, s->ncreds);
	if (s->passwd_path == NULL && s->pam_service == NULL && !s->adhoc)
		logx(s, LOG_NOTICE, "no password file (-P): password "
		    "mechanisms refuse everyone");
	for (i = 0; i < s->nlst; i++)
		off += (size_t)snprintf(line + off, sizeof line - off, "%s%s",
		    i ? " " : "", s->lst[i].name);
	/* on stderr (not with -i, where stderr may be the connection) */
	if (s->adhoc)
		adhoc_announce(s, o);
	if (!o->inetd)
		fprintf(stderr, "vncsasl: listening on %s\n",
		    s->nlst ? line : "(nothing: serving one connection)");
	if (s->use_syslog && s->nlst)
		logx(s, LOG_INFO, "listening on %s", line);
}

/* Step 9: every client closed and logged, listeners gone. */
static void
cleanup(struct server *s)
{
	int i;

	while (s->clients != NULL) {
		struct client *c = s->clients;

		s->clients = c->next;
		if (!c->dead)
			snprintf(c->why, sizeof c->why, "server shutting down");
		cl_free(c);
	}
	for (i = 0; i < s->nlst; i++)
		close(s->lst[i].fd);
	if (s->www_fd >= 0)
		close(s->www_fd);
	if (s->unix_path != NULL && unlink(s->unix_path) < 0)
		logx(s, LOG_WARNING, "cannot remove %s: %s", s->unix_path,
		    strerror(errno));
	enc_teardown(s);
	fb_source.close(s->fb);
	free(s->clip);
	free(s->clip_z);
	free(s->cu_hold);
#ifdef HAVE_PAM
	if (s->pam_fd >= 0) {	/* the broker ends when its socket does */
		close(s->pam_fd);
		waitpid(s->pam_pid, NULL, 0);
	}
#endif
	gsasl_done(s->gsasl);
	gnutls_global_deinit();
	logx(s, LOG_INFO, "exit");
}

int
main(int argc, char **argv)
{
	static struct server srv;
	struct server *s = &srv;
	struct opts o;
	int rc;

	server_defaults(s);
	parse_args(s, &o, argc, argv);
	if (o.kmode)
		return passwd_tool(o.args, o.nargs);
	if (o.tmode)
		return acl_test(s, o.args, o.nargs);
	if (s->use_syslog)
		openlog("vncsasl", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	setup_signals();
	setup_auth(s, &o);
	setup_source(s, o.fbarg);
	setup_listeners(s, &o);
	if (o.runas != NULL)
		drop_privileges(s, o.runas);
	sandbox(s);
	announce(s, &o);
	rc = serve(s);
	cleanup(s);
	return rc;
}
