/*
 * tests/fuzz.c - libFuzzer entry points for vncsasl's client state machine.
 *
 * The server's own code (vncsasl.c is included here, so every static
 * function is reachable) serves one client whose bytes come from the
 * fuzzer through a socketpair, an in-memory transport: the same reads,
 * handlers, writes and reaping as a real connection.
 *
 *   fuzz-preauth:  the first byte picks a configuration (None, VNC auth,
 *                  SASL type 20 on a "UNIX" peer, VeNCrypt TLSSASL /
 *                  TLSPlain, all of them), the rest is what the viewer sends
 *                  from the ProtocolVersion on.
 *   fuzz-postauth: a viewer already past ServerInit: the input is client
 *                  messages (SetPixelFormat, SetEncodings, updates, input,
 *                  cut text, SetDesktopSize, ...).
 *
 * make fuzz builds both (clang -fsanitize=fuzzer,address,undefined);
 * tests/fuzz-corpus/{preauth,postauth} hold seeds.
 */
#define main vncsasl_main
#include "../vncsasl.c"
#undef main

static struct server fz;

/* A file for the server to read, as an operator would give it. */
static const char *
fz_file(char *path, const char *text)
{
	int fd;

	if ((fd = mkstemp(path)) < 0 ||
	    write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		abort();
	close(fd);
	return path;
}

/* The server's own set-up steps (main's), with a fuzzer's options. */
static void
fz_setup(void)
{
	static char pw[] = "/tmp/vncsasl-fuzz-pw-XXXXXX";
	static char vnc[] = "/tmp/vncsasl-fuzz-vnc-XXXXXX";
	struct opts o;

	memset(&o, 0, sizeof o);
	server_defaults(&fz);
	fz.fail_delay_cap = 0;		/* no waiting in a fuzzer */
	fz.hash_rate = 0;
	snprintf(fz.name, sizeof fz.name, "fuzz");
	fz.sasl_host = "localhost";
	fz.passwd_path = fz_file(pw,
	    "alice:{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"
	    "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,"
	    "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=\n");
	o.vncpass = fz_file(vnc, "sekrit\n");
	o.port = "0";
	o.mechs = "SCRAM-SHA-256,SCRAM-SHA-1,PLAIN,LOGIN";
	o.seclist = "none";		/* fz_sectypes() picks per input */
	setup_signals();
	setup_auth(&fz, &o);
	setup_source(&fz, "128x96@0");
	unlink(pw);
	unlink(vnc);
	fz.passwd_path = NULL;		/* nothing to reload */
}

static void
fz_sectypes(const char *list)
{
	const struct sectype *v[nitems(sectypes)];
	int i, n = parse_seclist(list, v);

	fz.nsec_tcp = fz.nsec_unix = 0;
	for (i = 0; i < n; i++) {
		fz.sec_unix[fz.nsec_unix++] = v[i];
		fz.sec_tcp[fz.nsec_tcp++] = v[i];
	}
}

/* Run the loop's per-client work until the client is done or idle. */
static void
fz_run(int peer, const uint8_t *data, size_t size, int unix_peer)
{
	struct sockaddr_storage ss;
	struct client *c;
	uint8_t junk[65536];
	size_t off = 0;
	int turn;

	memset(&ss, 0, sizeof ss);
	ss.ss_family = unix_peer ? AF_UNIX : AF_INET;
	(void)ss;
	for (turn = 0; turn < 256 && fz.clients != NULL; turn++) {
		ssize_t w = 0;

		c = fz.clients;
		if (off < size) {	/* chunk sizes vary with the input */
			size_t chunk = 1 + (turn * 131 + data[off]) % 4096;

			if (chunk > size - off)
				chunk = size - off;
			w = write(peer, data + off, chunk);
			if (w > 0)
				off += (size_t)w;
		} else if (off == size) {
			shutdown(peer, SHUT_WR);
			off++;
		}
		while (read(peer, junk, sizeof junk) > 0)	/* what we sent */
			;
		if (!c->dead)
			cl_read(c);
		check_deadlines(&fz, mono_ms());
		if (!c->dead && c->gate_until)	/* no waiting in a fuzzer */
			cl_resume(c);
		send_updates(&fz, mono_ms());
		if (!c->dead)
			cl_flush(c);
		if (c->state == ST_CLOSING && buf_used(&c->out) == 0)
			c->dead = 1;
		reap(&fz);
	}
	while (fz.clients != NULL) {
		fz.clients->dead = 1;
		reap(&fz);
	}
}

static int
fz_one(const char *seclist, int unix_peer, const uint8_t *prefix,
    size_t plen, const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss;
	uint8_t *buf;
	int sv[2];

	if (fz.fb == NULL)
		fz_setup();
	fz_sectypes(seclist);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	set_nonblock(sv[1]);
	memset(&ss, 0, sizeof ss);
	if (unix_peer) {
		ss.ss_family = AF_UNIX;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)(void *)&ss;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(0x7f000001);
	}
	if (cl_new(&fz, sv[0], sv[0], &ss) == NULL) {
		close(sv[1]);
		return 0;
	}
	if ((buf = malloc(plen + size + 1)) == NULL)
		abort();
	if (plen > 0)
		memcpy(buf, prefix, plen);
	memcpy(buf + plen, data, size);
	fz_run(sv[1], buf, plen + size, unix_peer);
	free(buf);
	close(sv[1]);
	return 0;
}

#ifdef FUZZ_POSTAUTH
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* version 3.8, None, shared: straight into client messages */
	static const uint8_t hello[] = "RFB 003.008\n\x01\x01";

	return fz_one("none", 0, hello, sizeof hello - 1, data, size);
}
#else
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct {
		const char *list;
		int unix_peer;
	} conf[] = {
		{ "none", 0 }, { "vnc", 0 }, { "sasl", 1 }, { "tlssasl", 0 },
		{ "tlsplain,tlsvnc,tlsnone", 0 },
		{ "tlssasl,sasl,tlsplain,tlsnone,tlsvnc,vnc,none", 1 },
	};
	int k;

	if (size < 1)
		return 0;
	k = data[0] % (int)(sizeof conf / sizeof conf[0]);
	return fz_one(conf[k].list, conf[k].unix_peer, NULL, 0, data + 1,
	    size - 1);
}
#endif
