// A small program against the client that openapi-typescript + openapi-fetch make from the API's
// OpenAPI document. It only has to type-check (tsc --noEmit): submit multipart, read error.code,
// read progress as a number, read a typed output.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Job = components["schemas"]["JobResource"];
type ProblemCode = components["schemas"]["ProblemDetails"]["code"];

const client = createClient<paths>({
  baseUrl: "http://127.0.0.1:5080",
  headers: { Authorization: "Bearer sk_example" },
});

export async function submitPhoto(photo: Blob): Promise<Job | ProblemCode> {
  const { data, error } = await client.POST("/v1/jobs", {
    body: { file: photo, request: { pipeline: "image.ocr", model: "ppocr" } },
    bodySerializer(body) {
      // The body type is the union of the operation's media types: narrow to the multipart one.
      if (!("file" in body)) {
        return JSON.stringify(body);
      }
      const form = new FormData();
      form.append("file", body.file, "photo.jpg");
      form.append("request", new Blob([JSON.stringify(body.request)], { type: "application/json" }));
      return form;
    },
  });
  if (error) {
    const code: ProblemCode = error.code;
    if (code === "queue_full" || code === "rate_limited") {
      return code;
    }
    throw new Error(`${error.status} ${code}: ${error.detail ?? error.title}`);
  }
  return data;
}

export async function submitUrl(url: string): Promise<string> {
  const { data, error } = await client.POST("/v1/jobs", {
    body: { pipeline: "image.embed", model: "resnet18", input: { url } },
    params: { header: { "Idempotency-Key": url } },
  });
  if (error) {
    throw new Error(error.code);
  }
  return data.id;
}

export async function describe(id: string): Promise<string> {
  const { data, error } = await client.GET("/v1/jobs/{id}", { params: { path: { id }, query: { wait: 30 } } });
  if (error) {
    const notFound: boolean = error.code === "not_found";
    return notFound ? "gone" : error.code;
  }
  const percent: number = data.progress * 100;
  const output = data.output;
  if (output?.pipeline === "image.ocr") {
    return output.lines.map((line) => `${line.text} (${line.confidence.toFixed(2)})`).join("\n");
  }
  if (output?.pipeline === "image.embed") {
    const dims: number = output.dims;
    return `${dims} dims`;
  }
  if (output?.pipeline === "video.analyze") {
    return `${output.shots.length} shots over ${output.duration_s} s`;
  }
  return `${data.status} ${percent.toFixed(0)}%`;
}
