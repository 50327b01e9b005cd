// A deadline on an answer: what a probe, a scrape or a readiness check waits for a dependency
// that accepts connections and never answers.

/** The answer of `work` if it comes within ms, else a rejection; the work itself runs on. */
export async function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
