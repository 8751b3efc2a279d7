import { createServer } from 'node:http';

/**
 * The platform ceiling for HTTP: node:http reading the same form bodies and answering a JSON
 * body of the same shape, doing no verification or signing.
 */
const port = Number(process.argv[2]);
const answer = JSON.stringify({
  access_token: 'x'.repeat(700),
  issued_token_type: 'urn:ietf:params:oauth:token-type:jwt',
  token_type: 'N_A',
  expires_in: 900,
});
createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    if (!params.get('subject_token')) response.writeHead(400).end();
    else
      response
        .writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' })
        .end(answer);
  });
}).listen(port, '127.0.0.1');
