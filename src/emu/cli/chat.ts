// chat.ts: the `emu chat` read-eval-print loop over an Emu-I Chat session (infer/tasks.ts).
//
// Each line of standard input is one user message, answered on one line of output. Images are
// attached by path, either inline where they belong in the message (`<img:PATH>`) or with a
// `/image PATH` line, which attaches the image to the start of the next message. Commands:
// `/reset` forgets the conversation, `/quit` (or end of input) ends it, `/help` lists the syntax.
// A message that fails (a missing image, say) prints its error and the session goes on; the
// command then exits with status 1 at the end, so a scripted chat notices the failure.
import { EmuError } from '../../tensor/errors.ts';
import { Chat, type Message, type Pixels } from '../infer/tasks.ts';
import type { CliIO } from './command.ts';

export const CHAT_SYNTAX = [
  'Type a message and press Enter; the answer follows on the next line.',
  '  <img:PATH>     puts the PNG image at PATH at this point of the message',
  '  /image PATH    attaches the PNG image at PATH to the start of the next message',
  '  /reset         forgets the conversation so far',
  '  /help          shows this list',
  '  /quit          ends the chat (so does the end of input)',
];

/** One input line: a command, or a message of texts and image paths in order. */
export type ChatLine =
  | { kind: 'image'; path: string }
  | { kind: 'reset' | 'quit' | 'help' | 'empty' }
  | { kind: 'message'; items: (string | { path: string })[] };

/** A malformed chat line. */
export class ChatSyntaxError extends EmuError {}

const INLINE_IMAGE = /<img:([^>]*)>/g;

/** Parses one line of chat input; an unknown /command or a missing path is an Error with a clear message. */
export function parseChatLine(line: string): ChatLine {
  const s = line.trim();
  if (s === '') return { kind: 'empty' };
  if (s.startsWith('/')) {
    const [cmd, ...rest] = s.split(/\s+/);
    const arg = s.slice(cmd.length).trim();
    if (cmd === '/image') {
      if (!arg) throw new ChatSyntaxError('/image needs a path: /image PATH');
      return { kind: 'image', path: arg };
    }
    if ((cmd === '/reset' || cmd === '/quit' || cmd === '/exit' || cmd === '/help') && rest.length === 0) {
      return { kind: cmd === '/exit' ? 'quit' : (cmd.slice(1) as 'reset' | 'quit' | 'help') };
    }
    throw new ChatSyntaxError(`unknown chat command ${cmd} (type /help)`);
  }
  const items: (string | { path: string })[] = [];
  let last = 0;
  for (const m of s.matchAll(INLINE_IMAGE)) {
    const text = s.slice(last, m.index).trim();
    if (text) items.push(text);
    const path = m[1].trim();
    if (!path) throw new ChatSyntaxError('<img:...> needs a path: <img:PATH>');
    items.push({ path });
    last = m.index + m[0].length;
  }
  const tail = s.slice(last).trim();
  if (tail) items.push(tail);
  return { kind: 'message', items };
}

/** Runs the loop until /quit or the end of input; returns whether every message was answered. */
export async function chatLoop(chat: Chat, io: CliIO, loadImage: (path: string) => Pixels): Promise<boolean> {
  let pending: Pixels[] = [];
  let allOk = true;
  if (io.prompt) io.out('Emu chat. /help lists the commands.');
  const prompt = () => io.prompt?.('> ');
  prompt();
  for await (const line of io.lines()) {
    try {
      const parsed = parseChatLine(line);
      if (parsed.kind === 'quit') break;
      if (parsed.kind === 'help') io.out(CHAT_SYNTAX.join('\n'));
      else if (parsed.kind === 'reset') {
        chat.reset();
        pending = [];
        io.out('(conversation cleared)');
      } else if (parsed.kind === 'image') {
        pending.push(loadImage(parsed.path));
        io.out(`(attached ${parsed.path})`);
      } else if (parsed.kind === 'message') {
        const message: Message = [...pending, ...parsed.items.map((x) => (typeof x === 'string' ? x : loadImage(x.path)))];
        pending = [];
        io.out(chat.ask(message).text);
      }
    } catch (e) {
      if (!(e instanceof EmuError)) throw e;
      allOk = false;
      io.err(`emu chat: ${e.message}`);
    }
    prompt();
  }
  return allOk;
}
