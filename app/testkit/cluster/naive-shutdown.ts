// Preloaded (node --import) into a replica to make it behave like the
// recipe's Go echo server (README): SIGTERM ends the process at once, every socket is
// cut without a close frame. Only the local cluster's --naive mode uses it,
// to show that the runner sees the drops the drain controller prevents.
process.prependListener('SIGTERM', () => process.exit(0));
export {};
