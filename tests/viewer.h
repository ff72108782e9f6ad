/*
 * viewer.h - what the headless test viewers share, implemented once in
 * tests/viewer.c and linked into tests/lvc (libvncclient), tests/gvnc
 * (gtk-vnc) and tests/dummyref (the pixel check alone).
 *
 *   - the command line (usage text, option parsing; a viewer adds its own
 *     options through struct viewer_lib);
 *   - the pixel formats asked for, and turning received pixels into XRGB;
 *   - the check of a picture against fb-dummy.c: the status strip is
 *     decoded into a struct dummy_state, then every pixel must equal
 *     dummy_pixel() of that state, compared in the quantised domain of the
 *     pixel format (the server maps an 8-bit channel v to (v*max+127)/255);
 *   - the goals: verified frames and motion (-f, -F0), input that must show
 *     in the picture (-P/-K/-X) or must not (-N), raw mode (-R);
 *   - the status line a timeout reports, the SIGALRM backstop, the PPM
 *     (-w) and the final "ok:" line.
 *
 * A viewer calls viewer_start() first, then, each time the library holds a
 * complete picture, picture_complete(); it calls got_server_cut() for
 * ServerCutText, and goals_met() now and then while it waits (the -N window
 * ends by the clock, not by a picture).  Failures found here are left in
 * G.fail_code and G.fail_msg for the viewer to finish with.
 */
#ifndef VIEWER_H
#define VIEWER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "vncsasl.h"

enum { EX_OK = 0, EX_AUTH = 1, EX_USAGE = 2, EX_PROTO = 3, EX_TIMEOUT = 4 };

/* ---- names ---- */

struct name_num {
	const char *name;
	int num;
};

extern const struct name_num sec_types[];	/* -a */
extern const struct name_num vencrypt_subtypes[]; /* -S */

/* encodings both viewers accept by name (-e) */
enum {
	ENC_RAW = 1 << 0, ENC_COPYRECT = 1 << 1, ENC_RRE = 1 << 2,
	ENC_HEXTILE = 1 << 3, ENC_TIGHT = 1 << 4, ENC_ZRLE = 1 << 5,
	ENC_DESKTOPSIZE = 1 << 6, ENC_LASTRECT = 1 << 7, ENC_CURSOR = 1 << 8,
	ENC_EXTDESKTOPSIZE = 1 << 9,
};

extern const struct name_num enc_names[];

const char *num_name(const struct name_num *t, int num);
int allowed(const int *list, int n, int v);
int has_enc(int e);			/* -e named it */

/* ---- the command line ---- */

struct opts {
	const char *host, *port;
	int unix_sock;
	int types[8], ntypes;		/* allowed security types */
	int subtypes[16], nsubtypes;	/* allowed VeNCrypt subtypes */
	int subtypes_given;
	const char *user, *pass, *mech, *cafile, *ppm;
	int bpp, big_endian, red_low;
	const char *enc_list;		/* as given */
	int encs[16], nencs;		/* ENC_* in the order given */
	int frames, still;
	int want_ptr, ptr_x, ptr_y, ptr_btn;	/* the last -P */
	int ptrs[16][3], nptrs;		/* every -P, in order */
	int want_key;
	const char *text;		/* -T: typed with Shift as on US keys */
	uint32_t hold[8];		/* -D: pressed, never released */
	int nhold;
	const char *match[8];		/* -M: reference PPMs, in order */
	int nmatch;
	double duration;		/* -d: receive for this long */
	uint32_t keysym;
	const char *cut;
	int expect_fail;
	int nogo;			/* -N: the input must not arrive */
	int raw;			/* -R: no dummy picture to check */
	int quality;			/* -q: Tight JPEG quality 0-9, -1 none */
	int compress;			/* -c: CompressLevel 0-9, -1 none */
	double tol_mean;		/* -J: lossy pictures pass within this */
	int tol_max;			/*     mean and max error per channel */
	int exact_end;			/* -L: the last picture must be exact */
	double timeout;
	int verbose;
};

extern struct opts O;

/* What a viewer's library part hands to the shared code. */
struct viewer_lib {
	const char *name;		/* "lvc", "gvnc": prog */
	const char *optstring;		/* getopt letters of its own options */
	int (*opt)(int c, const char *arg);	/* -1: not an option of ours */
	void (*usage_extra)(void);	/* its lines of the usage text */
	void (*send_pointer)(int x, int y, int buttons);
	void (*send_key)(uint32_t keysym, int down);
	void (*send_cut)(const char *text, size_t len);
};

extern const char *prog;		/* "lvc", "gvnc", "dummyref" */
extern char who[300];			/* "lvc HOST:PORT", for FAIL lines */

/* Line-buffered stdout, options, SIGPIPE ignored, status "connecting". */
void viewer_start(const struct viewer_lib *lib, int argc, char **argv);

void usage(const char *why, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void vlog(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
double now_s(void);			/* monotonic seconds */

/* ---- what a timeout reports ---- */

/* removed by the SIGALRM handler too (file, directory, directory) */
extern char tmp_paths[3][4096];
void remove_tmp_paths(void);
/* SIGALRM after secs: "FAIL: ... timeout" with the status, exit 4 */
void arm_backstop(double secs);
const char *status_now(void);		/* the last update_status() */
void update_status(const char *phase);

/* ---- pixels ---- */

/* the pixel format asked for (true colour) */
struct pixfmt {
	int bpp, depth, big_endian;
	int rmax, gmax, bmax, rshift, gshift, bshift;
};

extern struct pixfmt PF;
/* -b: 32 (depth 24), 16 (RGB565), 8 (BGR233) */
void pixfmt_init(int bpp, int big_endian);
/* any true-colour format (bpp 8, 16 or 32) */
void pixfmt_set(const struct pixfmt *f);

/* Quantised channels (of PF) -> 0xRRGGBB, each scaled back to 0-255. */
uint32_t widen_rgb(unsigned r, unsigned g, unsigned b);

/*
 * Convert a picture in format PF into XRGB (kept for write_ppm).  `native`:
 * the buffer holds host-order pixels (gtk-vnc), else the wire byte order
 * (libvncclient, raw socket data).  stride is in bytes.
 */
void convert_frame(const uint8_t *buf, size_t stride, int w, int h,
    int native);

struct check {
	int garbled;			/* status strip unreadable */
	long mismatches;		/* pixels (a lower bound if stopped early) */
	double mean_err;		/* -J: mean error per channel (0-255) */
	int max_err;			/*     and the largest */
	int x, y;			/* first mismatch */
	unsigned got[3], want[3];	/* its channels, quantised */
	struct dummy_state st;		/* decoded state */
};

/* 0: the picture is exactly what fb-dummy draws for its own status strip;
 * stop_first: stop counting at the first mismatch */
int check_frame(const uint8_t *buf, size_t stride, int w, int h, int native,
    int stop_first, struct check *ck);
void describe_check(const struct check *ck, char *out, size_t len);
/* the last converted picture -> PPM (P6); nothing if path is NULL */
void write_ppm(const char *path, int w, int h);

/* Which pixels have been received since the last cover_reset(). */
int cover_reset(int w, int h);		/* -1: out of memory */
void cover_add(int x, int y, int w, int h);
size_t cover_left(void);

/* ---- progress ---- */

struct progress {
	int w, h;
	int verified;			/* complete verified frames (-R: updates) */
	uint32_t first_no, last_no;
	int motion;
	int actions_sent;
	double sent_at;
	uint16_t nkeys_base;
	int ptr_ok, key_ok, cut_ok;
	int echo;			/* 0 none yet, 1 same text, 2 other text */
	size_t echo_len;
	char echo_head[40];
	double cut_ok_at;
	char *server_cut;		/* the last ServerCutText (-R prints it) */
	size_t server_cut_len;
	struct check last;		/* last check */
	int checked;			/* pictures checked */
	int lossy, exact;		/* -J: verified pictures of each kind */
	int last_exact;			/* the last verified one was exact */
	double worst_mean;		/* -J: the worst mean error accepted */
	int worst_max;			/*     and the worst max error */
	char sec[96];			/* security type chosen */
	char mech[64];			/* SASL mechanism */
	int matched;			/* -M references matched so far */
	long match_diff;		/* pixels off in the last comparison */
	int match_x, match_y;		/* first of them */
	double first_at;		/* the first complete picture */
	int fail_code;			/* nonzero: stop with this */
	char fail_msg[512];
};

extern struct progress G;

void set_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* what picture_complete() found */
enum {
	PIC_BAD = -1,		/* not the dummy picture (G.last says why) */
	PIC_MORE = 0,		/* verified (or counted), goals not met yet */
	PIC_DONE = 1,		/* verified, and every goal is met */
	PIC_FAIL = 2,		/* a goal failed: G.fail_code, G.fail_msg */
};

/*
 * The library holds a complete picture (for -R: a complete update after the
 * whole screen has been received once).  Checks it, sends -P/-K/-X after
 * the first one, and accounts for the goals.
 */
int picture_complete(const uint8_t *buf, size_t stride, int w, int h,
    int native, int stop_first);
/* every goal met (asked again while waiting: the -N window is a time) */
int goals_met(void);
/* after the goals: still worth waiting for the echo of -X */
int echo_pending(void);
void got_server_cut(const char *text, size_t len);
/* the result on stdout: "ok: ..." for EX_OK and no fmt, else "FAIL: " */
void report(int code, const char *fmt, va_list ap);

#endif
