// A group streams token ids back; the answer is streamed as text. Each id's text is what the
// decoded answer gained; a byte-level token can end inside a UTF-8 character (decoded as
// U+FFFD until the next token completes it), so a trailing U+FFFD is held back.
import type { ModelDir } from "@apb/runtime";

export function tokenText(dir: ModelDir, onText: (piece: string) => void): { push(id: number): void; finish(ids: number[]): void } {
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
    /** The final ids: whatever was held back (or did not stream) is shown now. */
    finish(all) {
      show(dir.tokenizer.decode(all, { skipSpecialTokens: true }));
    },
  };
}
