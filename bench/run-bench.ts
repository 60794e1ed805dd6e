// The entry of every benchmark script: run `main`, clean up its processes and temp dirs whatever
// happens (failure, Ctrl-C, SIGTERM), and exit non-zero on failure with the stack on stderr.
export async function runBench(name: string, main: () => Promise<void>, cleanup: () => Promise<void>): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await main();
  } catch (err) {
    process.stderr.write(`${name} bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}
