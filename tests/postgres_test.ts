/**
 * npm:postgres over mgnet's node:net socket (src/node/net.ts), against a
 * real PostgreSQL from Debian that the test starts on a free port in a temp
 * dir (and stops). Skipped, saying so, where PostgreSQL is not installed.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import postgres from "postgres";
import { makeCert, test } from "./helpers.ts";
import { createConnection } from "../src/node/net.ts";
import { Manager, serve, type TcpDataEvent } from "../mod.ts";
import { pgBin, startPostgres } from "./pg_server.ts";

/** npm:postgres with options its types lack (`socket` is documented, not typed). */
const pgClient = (o: Record<string, unknown>) => postgres(o as any);

const bin = pgBin();
if (!bin) {
  console.warn(
    "postgres_test: SKIPPED: PostgreSQL is not installed (apt-get install -y postgresql; .ci/run installs it)",
  );
}

test("postgres: npm:postgres runs its queries over mgnet's node:net socket", {
  ignore: !bin,
  timeoutMs: 90_000,
}, async (t) => {
  const pg = await startPostgres(bin!);
  let sockets = 0;
  const options = {
    host: "127.0.0.1",
    port: pg.port,
    user: "postgres",
    database: "postgres",
    onnotice: () => {},
    socket: ({ host: [host], port: [port] }: { host: string[]; port: number[] }) => {
      sockets++;
      return createConnection({ host, port });
    },
  };
  const sql = pgClient({ ...options, max: 1 });
  try {
    await t.step("SELECT with parameters", async () => {
      const [row] = await sql`select ${40}::int + ${2}::int as sum, ${"héllo"}::text as s`;
      assert.equal(row.sum, 42);
      assert.equal(row.s, "héllo");
      assert.equal(sockets, 1);
    });

    await t.step("a 1 MiB bytea round trip", async () => {
      const blob = Buffer.alloc(1 << 20);
      for (let i = 0; i < blob.length; i++) blob[i] = (i * 131 + (i >> 9)) & 0xff;
      const [row] = await sql`select ${blob}::bytea as b, length(${blob}::bytea) as n`;
      assert.equal(row.n, 1 << 20);
      assert.ok(Buffer.isBuffer(row.b));
      assert.equal(Buffer.compare(row.b, blob), 0);
    });

    await t.step("a transaction commits, a failed one rolls back", async () => {
      await sql`create table t (id int primary key, v text)`;
      await sql.begin(async (tx: any) => {
        await tx`insert into t values (1, 'one')`;
        await tx`insert into t values (2, 'two')`;
      });
      await assert.rejects(
        sql.begin(async (tx: any) => {
          await tx`insert into t values (3, 'three')`;
          await tx`insert into t values (1, 'duplicate')`;
        }),
        (e: { code?: string }) => e.code === "23505",
      );
      const rows = await sql`select id, v from t order by id`;
      assert.deepEqual(rows.map((r: any) => [r.id, r.v]), [[1, "one"], [2, "two"]]);
    });

    await t.step("a query error rejects that query; the connection goes on", async () => {
      await assert.rejects(sql`select 1 / 0`, (e: { code?: string }) => e.code === "22012");
      const [row] = await sql`select 'alive' as s`;
      assert.equal(row.s, "alive");
      assert.equal(sockets, 1); // the same connection
    });
  } finally {
    await sql.end();
  }

  await t.step("many concurrent queries on a pool of 4", async () => {
    const before = sockets;
    const pool = pgClient({ ...options, max: 4 });
    try {
      const n = 400;
      const results = await Promise.all(
        Array.from({ length: n }, (_, i) => pool`select ${i}::int as i, repeat('x', ${i % 97})::text as pad`),
      );
      for (let i = 0; i < n; i++) {
        assert.equal(results[i][0].i, i);
        assert.equal(results[i][0].pad, "x".repeat(i % 97));
      }
      assert.ok(sockets - before >= 2 && sockets - before <= 4, `${sockets - before} sockets`);
    } finally {
      await pool.end();
    }
  });

  await t.step("a serve() handler's queries on the server's own manager", async () => {
    let onManager = 0;
    const server = serve({ port: 0, hostname: "127.0.0.1", onListen: false }, async () => {
      const [row] = await db`select count(*)::int as n from t`;
      return new Response(String(row.n));
    });
    const db = pgClient({
      ...options,
      max: 2,
      socket: ({ host: [host], port: [port] }: { host: string[]; port: number[] }) => {
        onManager++;
        return createConnection({ host, port, manager: server.manager });
      },
    });
    try {
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`http://127.0.0.1:${server.addr.port}/`);
        assert.equal(await res.text(), "2");
      }
      assert.equal(onManager, 1);
    } finally {
      await db.end();
      await server.shutdown();
    }
  });

  await pg.stop();
});

test(
  "postgres: TLS in-band: npm:postgres with ssl over mgnet's socket (node:tls), and mgnet's own startTls()",
  {
    ignore: !bin,
    timeoutMs: 90_000,
  },
  async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "mgnet-pg-tls-" });
    const server = makeCert(dir, "localhost", "DNS:localhost,IP:127.0.0.1");
    const stranger = makeCert(dir, "stranger", "DNS:localhost,IP:127.0.0.1");
    const pg = await startPostgres(bin!, { ssl: server });
    let sockets = 0;
    const options = (ssl: unknown) => ({
      host: "127.0.0.1",
      port: pg.port,
      user: "postgres",
      database: "postgres",
      onnotice: () => {},
      max: 1,
      ssl,
      socket: ({ host: [host], port: [port] }: { host: string[]; port: number[] }) => {
        sockets++;
        return createConnection({ host, port });
      },
    });
    try {
      await t.step("the CA-verified session is encrypted, and a 1 MiB bytea crosses it intact", async () => {
        const sql = pgClient(options({ ca: server.cert, servername: "localhost" }));
        try {
          const [row] = await sql`select ssl, version from pg_stat_ssl where pid = pg_backend_pid()`;
          assert.equal(row.ssl, true);
          assert.match(row.version, /^TLSv1\.[23]$/);
          const blob = Buffer.alloc(1 << 20);
          for (let i = 0; i < blob.length; i++) blob[i] = (i * 7 + (i >> 11)) & 0xff;
          const [echo] = await sql`select ${blob}::bytea as b`;
          assert.equal(Buffer.compare(echo.b, blob), 0);
          assert.equal(sockets, 1);
        } finally {
          await sql.end();
        }
      });

      await t.step(
        "mgnet's own TCP connection: SSLRequest, then startTls() with mgnet's TLS; startup over it",
        async () => {
          await using mgr = new Manager();
          const conn = await mgr.connect(`tcp://127.0.0.1:${pg.port}`);
          const input = conn[Symbol.asyncIterator]();
          const next = async () => {
            const r = await input.next();
            assert.ok(!r.done && r.value.type === "data", `data, not ${JSON.stringify(r.value?.type)}`);
            return (r.value as TcpDataEvent).bytes.slice();
          };
          conn.send(new Uint8Array([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])); // SSLRequest
          assert.deepEqual([...await next()], [0x53]); // 'S': go ahead
          await conn.startTls({ serverName: "localhost", ca: server.cert });
          assert.match(conn.tlsInfo()!.protocol, /^TLSv1\.[23]$/);
          const params = new TextEncoder().encode("user\0postgres\0database\0postgres\0\0");
          const startup = new Uint8Array(8 + params.length);
          new DataView(startup.buffer).setUint32(0, startup.length);
          new DataView(startup.buffer).setUint32(4, 196608); // protocol 3.0
          startup.set(params, 8);
          conn.send(startup);
          let reply = await next();
          while (!reply.includes(0x5a)) reply = new Uint8Array([...reply, ...await next()]); // to ReadyForQuery
          assert.equal(String.fromCharCode(reply[0]), "R"); // AuthenticationOk (trust)
          assert.equal(new DataView(reply.buffer).getUint32(5), 0);
          conn.close();
        },
      );

      await t.step("a server certificate from an unknown CA fails the connection", async () => {
        const sql = pgClient(options({ ca: stranger.cert, servername: "localhost" }));
        try {
          await assert.rejects(sql`select 1`, (e: Error & { code?: string }) => {
            assert.match(`${e.code} ${e.message}`, /cert|CERT|UnknownIssuer|verify/);
            return true;
          });
        } finally {
          await sql.end({ timeout: 1 });
        }
      });
    } finally {
      await pg.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
