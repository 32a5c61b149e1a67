// A backend for agent tests: answers each TCP connection with its name. Unlike a bare server it
// survives the health checker's probes, which connect and reset at once (the reply then fails).
// argv: host name; prints the port it listens on.
import { createServer } from 'node:net';
import process from 'node:process';

const [host, name] = process.argv.slice(2);
const server = createServer((socket) => {
  socket.on('error', () => socket.destroy());
  socket.end(`${name}\n`);
});
server.listen(0, host, () => process.stdout.write(`${server.address().port}\n`));
