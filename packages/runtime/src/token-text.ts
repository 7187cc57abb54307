// A group streams token ids back; the answer is streamed as text. Each id's text is what the
// decoded answer gained; a byte-level token can end inside a UTF-8 character (decoded as
// U+FFFD until the next token completes it), so a trailing U+FFFD is held back.
import type { ModelDir } from "./model-dir.js";

export interface TokenText {
  /** The next generated id: calls onText with the text it completes, if any. */
  push(id: number): void;
  /** The final ids: whatever was held back (or did not stream) is shown now. */
  finish(ids: number[]): void;
}

export function tokenText(dir: ModelDir, onText: (piece: string) => void): TokenText {
  const ids: number[] = [];
  let shown = "";
  const show = (text: string) => {
    if (!text.startsWith(shown) || text === shown) return;
    onText(text.slice(shown.length));
    shown = text;
  };
  return {
    push(id) {
      ids.push(id);
      show(dir.tokenizer.decode(ids, { skipSpecialTokens: true }).replace(/\uFFFD+$/, ""));
    },
    finish(all) {
      show(dir.tokenizer.decode(all, { skipSpecialTokens: true }));
    },
  };
}
